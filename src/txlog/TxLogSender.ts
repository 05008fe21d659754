import { randomBytes } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { pushRecent } from '../collections/recent';
import { newMessageId } from '../message/messageId';
import { ConfigurationError } from '../errors';
import { Logger } from '../logging/Logger';
import { OutboxMessage } from '../message/OutboxMessage';
import { SenderBatch, SenderStore } from '../outbox/SenderStore';
import { toTransportMessage } from '../message/toTransportMessage';
import { JourneyStep, type JourneyRecorder } from '../journey/JourneyEvent';

import { Transport } from '../transport/Transport';
import { CheckVerdict, TransactionChecker, TypeOrmCheckBarrier, barrierKey, httpCheck } from './CheckBack';
import { DualLog, LogFault } from './DualLog';
import { TxLogNotFoundError, TxLogNotStartedError } from './errors';
import { BeginRecord, EndRecord, LoggedMessage, SentRecord, lsnOf, parseRecord } from './records';

/** Points where a test can stop the process (`faultHook`), in the order a transaction passes them. */
export type TxLogWindow =
  | 'begin-written' // begin record written, not yet synced
  | 'begin-synced' // begin durable, before COMMIT
  | 'committed' // after COMMIT, before the end record
  | 'end-synced' // end record durable, before publishing
  | 'published' // broker confirmed, before the Sent record
  | 'checkpoint-temp' // checkpoint temp file synced, not renamed
  | 'snapshot-temp'; // snapshot temp file synced, not renamed

export interface TxLogOptions {
  /** One or two directories (two: meant for two disks; every record is synced to both). */
  directories: string[];
  /** Written into begin records and given to checkers; default the tmm instance name. */
  serviceName?: string;
  /** A segment is closed and a new one started once it holds this many bytes (default 64 MiB). */
  segmentBytes?: number;
  /** A begin with no end after this long is in doubt and checked back (default 10 s). */
  inDoubtAfterMs?: number;
  /** Period of the analysis loop (default 200 ms). */
  analysisIntervalMs?: number;
  /** Check-backs of one transaction before it becomes EXCEPTION (default 10). */
  maxChecks?: number;
  /** A check-back not answered within this is a failed check (default 5 s). */
  checkTimeoutMs?: number;
  /** Delay after the n-th unknown/failed check: initial · 2^(n-1), capped (defaults 1 s, 60 s). */
  checkBackoff?: { initialDelayMs?: number; maxDelayMs?: number };
  /** HTTP check URL written into each begin record (TMM's `Check` field); used before the barrier. */
  checkUrl?: string;
  /** Keep the check-back barrier in the business database (default true). */
  barrier?: boolean;
  /**
   * While degraded, how often the sender tries to rebuild a failed directory from the live one and write
   * both again (default 10 s). A directory that still fails stays out until the next try.
   */
  repairIntervalMs?: number;
  /**
   * Barrier rows (`tmm_txlog_barrier`) of transactions whose fate is final are deleted once they are older
   * than this (default 1 h): long enough that no check-back of that uid is still on its way. The purge runs
   * every tenth of it (between 1 s and 1 min), as one key-range DELETE per log.
   */
  barrierRetentionMs?: number;
  /** Publish attempts of a committed transaction before it becomes DEAD (default 10). */
  maxSendAttempts?: number;
  sendBackoff?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Test hook: called at each window (see TxLogWindow); a crash test SIGKILLs the process from it. */
  faultHook?: (window: TxLogWindow) => void;
}

/** One check-back and its answer. */
export interface CheckAttempt {
  at: number;
  via: 'barrier' | 'checker' | 'url';
  verdict: CheckVerdict | 'error';
  error?: string;
}

/** A transaction the log sender could not finish alone: shown in TMM-ADMIN, force-sent or discarded there. */
export interface TxLogProblem {
  uid: string;
  /** EXCEPTION: check-back never gave a verdict (or the record was unreadable); DEAD: publishing kept failing; SENDING: force-send under way. */
  state: 'EXCEPTION' | 'DEAD' | 'SENDING';
  reason: string;
  since: number;
  serviceName: string;
  topics: string[];
  messages: LoggedMessage[];
  checks: CheckAttempt[];
  sendAttempts: number;
  lastError?: string;
}

interface TxState {
  uid: string;
  beginLsn: number;
  begin: BeginRecord;
  phase: 'begun' | 'committed';
  checks: CheckAttempt[];
  nextCheckAt: number;
  checking: boolean;
  /** An end record is being written (the transaction's hook or a check-back verdict): nothing else may resolve or send it. */
  resolving: boolean;
  sendAttempts: number;
  nextSendAt: number;
  sending: boolean;
  confirmed: Set<string>;
  lastError?: string;
  /** Wall clock of the begin, for begin→publish latency. */
  startedAt: number;
}

interface Snapshot {
  seq: number;
  txs: Record<string, { checks: CheckAttempt[]; sendAttempts: number; lastError?: string }>;
  problems: TxLogProblem[];
  /**
   * Barrier rows keyed by a bare uid (begun before barrier keys carried the log id) not yet purged: [uid,
   * final at]. Rows keyed `<log id>.<uid>` need no list: they go by key range (TypeOrmCheckBarrier.purgeBelow).
   */
  purge?: [string, number][];
}

export interface TxLogHealth {
  status: 'ok' | 'degraded' | 'down';
  degraded: boolean;
  directories: { path: string; ok: boolean; error?: string; segments: number }[];
  /** Failed directories brought back by live repair since start. */
  repairs: number;
  /** Times the log came back after every directory had failed (DualLog.revive) since start. */
  revivals: number;
  inDoubt: number;
  pendingSend: number;
  problems: number;
  checkpoint: number;
}

/** How long the transaction's end record and the Sent record wait for a write batch to share (DualLog lazy appends). */
const END_LINGER_MS = 3;
const SENT_LINGER_MS = 50;
const CHECKPOINT = 'checkpoint.json';
const SNAPSHOT = 'analysis.json';
/** The log's id (`{ "id": "<hex>" }`), written once at the first start: it scopes this log's barrier rows. */
const LOG_ID = 'log-id.json';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The log-mode sender (TMM-CLIENT's local transaction log), a SenderStore.
 *
 * Contract:
 * - beforeCommit: inserts the check-back barrier row (when the barrier is on) in the business transaction
 *   and appends a begin record (uid, service, topics, messages, check-back reference); COMMIT happens only
 *   after the begin is synced on every live directory. afterCommit appends end-commit (the caller does not
 *   wait for it) and publishes once it is synced;
 *   afterRollback appends end-rollback. Publishing waits for the broker's confirm; then a Sent record.
 * - The analysis loop checks back begins without end after inDoubtAfterMs (barrier, app checker or check
 *   URL), retries unknown/failed checks with backoff, and after maxChecks moves the transaction to
 *   EXCEPTION; it resends unconfirmed messages with backoff and after maxSendAttempts moves them to DEAD.
 * - Whenever the in-doubt or pending-send state changed, the loop persists a snapshot (atomic, both
 *   directories), then advances the checkpoint over transactions whose fate is final, then deletes
 *   segments below it. Unreadable records are quarantined as EXCEPTION so the checkpoint moves on.
 * - start() loads checkpoint and snapshot and replays the log after the checkpoint.
 */
export class TxLogSender implements SenderStore {
  readonly kind = 'log' as const;
  readonly log: DualLog;
  private readonly o: Required<Omit<TxLogOptions, 'checkUrl' | 'faultHook' | 'serviceName'>> & Pick<TxLogOptions, 'checkUrl' | 'faultHook'> & { serviceName: string };
  private readonly barrier: TypeOrmCheckBarrier | undefined;
  private readonly txs = new Map<string, TxState>();
  private readonly problems = new Map<string, TxLogProblem>();
  private readonly checkers = new Map<string, TransactionChecker>();
  /** Legacy barrier rows (bare-uid keys) to delete: uid and when its fate became final, oldest first (kept in the snapshot). */
  private purgeQueue: [string, number][] = [];
  /** This log's id (LOG_ID), the prefix of its barrier keys. */
  private logId = '';
  private nextPurgeAt = 0;
  private checkpoint = 0;
  private snapshotSeq = 0;
  /** The content (without seq) of the snapshot last written: an unchanged snapshot is not written again. */
  private lastSnapshot: string | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private nextRepairAt = 0;
  private loopRunning: Promise<void> | undefined;
  private started = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** begin→publish-confirmed latencies in ms, the last 100k to 200k (for the benchmark and metrics; see pushRecent). */
  readonly latencies: number[] = [];
  readonly counters = { begins: 0, commits: 0, rollbacks: 0, sent: 0, checks: 0, exceptions: 0, dead: 0, quarantined: 0, checkpoints: 0, segmentsDeleted: 0, barrierPurged: 0 };

  constructor(
    options: TxLogOptions,
    private readonly deps: {
      transport: Transport;
      logger: Logger;
      dataSource?: DataSource;
      serviceName: string;
      /** Records `published` / `publish-failed` steps of the log's sends (default: none). */
      journey?: JourneyRecorder;
      /** This process in journey steps (the `source`). */
      instance?: string;
    },
  ) {
    checkOptions(options);
    this.o = {
      serviceName: options.serviceName ?? deps.serviceName,
      directories: options.directories,
      segmentBytes: options.segmentBytes ?? 64 * 1024 * 1024,
      inDoubtAfterMs: options.inDoubtAfterMs ?? 10_000,
      analysisIntervalMs: options.analysisIntervalMs ?? 200,
      maxChecks: options.maxChecks ?? 10,
      checkTimeoutMs: options.checkTimeoutMs ?? 5000,
      checkBackoff: { initialDelayMs: 1000, maxDelayMs: 60_000, ...options.checkBackoff },
      checkUrl: options.checkUrl,
      barrier: options.barrier ?? deps.dataSource !== undefined,
      repairIntervalMs: options.repairIntervalMs ?? 10_000,
      barrierRetentionMs: options.barrierRetentionMs ?? 3_600_000,
      maxSendAttempts: options.maxSendAttempts ?? 10,
      sendBackoff: { initialDelayMs: 1000, maxDelayMs: 60_000, ...options.sendBackoff },
      faultHook: options.faultHook,
    };
    if (this.o.barrier && !deps.dataSource) throw new ConfigurationError('txlog.barrier', 'the check-back barrier needs a TypeORM DataSource');
    this.barrier = this.o.barrier ? new TypeOrmCheckBarrier(deps.dataSource!) : undefined;
    this.log = new DualLog(options.directories, this.o.segmentBytes, deps.logger, (f: LogFault) => this.fault(f === 'record-written' ? 'begin-written' : f));
  }

  /** Registers the check-back for transactions of a topic or of a service (a topic checker wins). */
  registerChecker(target: { topic: string } | { service: string }, checker: TransactionChecker): void {
    if (typeof checker !== 'function') throw new ConfigurationError('txlog.checker', 'must be a function');
    const key = 'topic' in target ? `topic:${target.topic}` : `service:${target.service}`;
    this.checkers.set(key, checker);
  }

  /** Creates the barrier table, opens (and repairs) the log, loads checkpoint and snapshot, replays, starts the loop. */
  async start(): Promise<void> {
    if (this.started) return;
    if (this.barrier) await this.barrier.assertTable();
    const recovery = await this.log.open();
    const known = await this.log.readAtomic<{ id?: unknown }>(LOG_ID, (c) => c.find((x) => typeof x.id === 'string' && /^[0-9a-f]{8,32}$/.test(x.id)));
    this.logId = typeof known?.id === 'string' ? known.id : randomBytes(8).toString('hex');
    if (!known) await this.log.writeAtomic(LOG_ID, JSON.stringify({ id: this.logId }));
    const cp = await this.log.readAtomic<{ lsn: number }>(CHECKPOINT, (c) => c.reduce((a, b) => (b.lsn > a.lsn ? b : a)));
    this.checkpoint = cp?.lsn ?? 0;
    const snap = await this.log.readAtomic<Snapshot>(SNAPSHOT, (c) => c.reduce((a, b) => (b.seq > a.seq ? b : a)));
    this.snapshotSeq = snap?.seq ?? 0;
    for (const p of snap?.problems ?? []) this.problems.set(p.uid, p);
    this.purgeQueue = snap?.purge ?? [];
    if (recovery.firstLsn > this.checkpoint) {
      this.deps.logger.error('tmm txlog: records between the checkpoint and the first segment are missing on every directory', {
        checkpoint: this.checkpoint,
        firstLsn: recovery.firstLsn,
      });
    }
    recovery.records.forEach((payload, i) => {
      const lsn = recovery.firstLsn + i;
      if (lsn < this.checkpoint) return;
      this.replay(lsn, payload);
    });
    for (const [uid, s] of Object.entries(snap?.txs ?? {})) {
      const tx = this.txs.get(uid);
      if (!tx) continue;
      tx.checks = s.checks ?? [];
      tx.sendAttempts = s.sendAttempts ?? 0;
      tx.lastError = s.lastError;
    }
    this.started = true;
    this.deps.logger.info('tmm txlog: started', { checkpoint: this.checkpoint, replayed: recovery.records.length, inDoubt: this.countPhase('begun'), pendingSend: this.countPhase('committed'), problems: this.problems.size });
    for (const p of this.problems.values()) if (p.state === 'SENDING') this.track(this.publishProblem(p));
    this.schedule(0);
  }

  /** Stops the loop, waits for in-flight work, closes the log. Unsent messages stay in the log for the next start. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    await this.loopRunning;
    await Promise.allSettled([...this.inFlight]);
    await this.persistAndCheckpoint().catch((e) => this.deps.logger.error('tmm txlog: final checkpoint failed (the next start replays more)', { error: String(e) }));
    await this.log.close();
  }

  open(): SenderBatch {
    let tx: TxState | undefined;
    return {
      // Not an async function: the begin record's promise and the barrier row's are chained, not awaited (fewer
      // promises per transaction; each costs its async_hooks work under AsyncLocalStorage).
      beforeCommit: (manager: EntityManager, messages: OutboxMessage[]): Promise<void> => {
        try {
          if (!this.started) throw new TxLogNotStartedError('send() in log mode needs tmm.start()');
          for (const m of messages) {
            if (m.orderingKey || m.availableAt > m.createdAt) {
              throw new ConfigurationError('send', `the log sender does not support delay, deliverAt or orderingKey (message for topic "${m.topic}"); use the outbox sender`);
            }
          }
          // The process-wide UUIDv7 generator (strictly increasing, pooled random bytes): uids sort in log order.
          const uid = newMessageId();
          const topics = [...new Set(messages.map((m) => m.topic))];
          const check = this.checkReference(topics, uid);
          const logged = messages.map(toLogged);
          const append = this.log.append((lsn) => {
            const begin: BeginRecord = { type: 'begin', lsn, uid, serviceName: this.o.serviceName, topics, messages: logged, check, at: Date.now() };
            tx = newTx(begin, lsn);
            this.txs.set(uid, tx);
            return [Buffer.from(JSON.stringify(begin))];
          }, 'record-written');
          this.counters.begins++;
          const synced = () => this.fault('begin-synced');
          const barrier = this.barrier && check.key ? this.barrier : undefined;
          if (!barrier) return append.then(synced);
          if (barrier.sendsAheadOfCommit(manager)) {
            // PostgreSQL: the barrier row goes out with the COMMIT, in one round trip, once the begin record is
            // durable (ADR 0078) — rather than a round trip of its own during the fsync.
            return append.then(() => barrier.insertCommit(manager, check.key!)).then(synced);
          }
          return Promise.all([append, barrier.insertCommit(manager, check.key!)]).then(synced);
        } catch (e) {
          return Promise.reject(e); // as the async function this was: a rejection, never a synchronous throw
        }
      },
      afterCommit: () => {
        if (!tx) return;
        this.fault('committed');
        // Not awaited: the caller does not wait for the end record (the begin is durable; were the end lost, the
        // check-back finds the commit). Publishing starts once the end record is synced.
        this.track(this.resolve(tx, 'commit', 'transaction'));
      },
      afterRollback: async () => {
        if (!tx) return;
        await this.resolve(tx, 'rollback', 'transaction');
      },
    };
  }

  health(): TxLogHealth {
    const h = this.log.health();
    const live = h.directories.filter((d) => d.ok).length;
    return {
      status: live === 0 ? 'down' : h.degraded ? 'degraded' : 'ok',
      degraded: h.degraded,
      directories: h.directories,
      repairs: this.log.repairs,
      revivals: this.log.revivals,
      inDoubt: this.countPhase('begun'),
      pendingSend: this.countPhase('committed'),
      problems: this.problems.size,
      checkpoint: this.checkpoint,
    };
  }

  /** Transactions in EXCEPTION or DEAD (and force-sends under way), oldest first. */
  listProblems(): TxLogProblem[] {
    return [...this.problems.values()].sort((a, b) => a.since - b.since);
  }

  getProblem(uid: string): TxLogProblem | undefined {
    return this.problems.get(uid);
  }

  /** Publishes an EXCEPTION/DEAD transaction's messages now (the operator decided it committed). Resolves when confirmed. */
  async forceSend(uid: string): Promise<TxLogProblem> {
    const p = this.problems.get(uid);
    if (!p || p.state === 'SENDING') throw new TxLogNotFoundError(uid, 'in EXCEPTION or DEAD');
    p.state = 'SENDING';
    await this.persistSnapshot();
    await this.publishProblem(p);
    if (this.problems.has(uid)) throw new Error(`force-send of ${uid} failed: ${p.lastError ?? 'unknown error'}`);
    return p;
  }

  /** Drops an EXCEPTION/DEAD transaction: its messages are never published. */
  async discard(uid: string): Promise<TxLogProblem> {
    const p = this.problems.get(uid);
    if (!p || p.state === 'SENDING') throw new TxLogNotFoundError(uid, 'in EXCEPTION or DEAD');
    // The decision in the log too: were the checkpoint still before its begin at a crash, replay must not revive it.
    await this.log.append((lsn) => [Buffer.from(JSON.stringify({ type: 'end', lsn, uid, outcome: 'rollback', source: 'admin', at: Date.now() } satisfies EndRecord))]);
    this.problems.delete(uid);
    this.finalBarrier({ uid });
    await this.persistSnapshot();
    return p;
  }

  /**
   * Resolves when nothing is in doubt or waiting to be sent, and the records saying so (end, Sent) are durable
   * (tests, shutdown scripts).
   */
  async drained(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.txs.size > 0) {
      if (Date.now() > until) throw new Error(`txlog not drained after ${timeoutMs}ms: ${this.countPhase('begun')} in doubt, ${this.countPhase('committed')} to send`);
      await new Promise((r) => setTimeout(r, 1)); // a cheap check: resolve within a millisecond of the last Sent (bench:log-producer times it)
    }
    await this.log.settle();
  }

  // ---- internals ----

  private checkReference(topics: string[], uid: string): BeginRecord['check'] {
    if (this.o.checkUrl) return { barrier: false, url: this.o.checkUrl };
    if (topics.some((t) => this.checkers.has(`topic:${t}`)) || this.checkers.has(`service:${this.o.serviceName}`)) return { barrier: false };
    if (this.barrier) return { barrier: true, key: barrierKey(this.logId, uid) };
    throw new ConfigurationError('txlog', 'no way to check back this transaction: enable the barrier, set checkUrl or register a checker for its topic or service');
  }

  private replay(lsn: number, payload: Buffer): void {
    const r = parseRecord(payload);
    if (!r) {
      const uid = `quarantined-lsn-${lsnOf(payload) ?? lsn}`;
      this.counters.quarantined++;
      this.deps.logger.error('tmm txlog: unreadable record quarantined as EXCEPTION', { lsn, uid });
      if (!this.problems.has(uid)) {
        this.problems.set(uid, { uid, state: 'EXCEPTION', reason: `unreadable record at lsn ${lsn}: ${payload.toString('utf8').slice(0, 500)}`, since: Date.now(), serviceName: '?', topics: [], messages: [], checks: [], sendAttempts: 0 });
        this.dirty = true;
      }
      return;
    }
    if (r.type === 'begin') {
      if (!this.problems.has(r.uid) && !this.txs.has(r.uid)) this.txs.set(r.uid, newTx(r, lsn));
      return;
    }
    const tx = this.txs.get(r.uid);
    if (!tx) return;
    if (r.type === 'end') {
      if (r.outcome === 'rollback') this.txs.delete(r.uid);
      else tx.phase = 'committed';
    } else {
      this.txs.delete(r.uid);
    }
  }

  /** Records the fate of a begun transaction once (the transaction's own hook or a check-back verdict). */
  private async resolve(tx: TxState, outcome: 'commit' | 'rollback', source: EndRecord['source']): Promise<void> {
    if (tx.phase !== 'begun' || tx.resolving || !this.txs.has(tx.uid)) return;
    tx.resolving = true;
    try {
      // The transaction's own end waits a moment for a batch to ride in (the next transaction's begin): at one
      // caller that begin then does not queue behind this record's sync. Publishing still waits for the sync.
      const lingerMs = source === 'transaction' && outcome === 'commit' ? END_LINGER_MS : undefined;
      await this.log.append((lsn) => [Buffer.from(endRecordJson({ type: 'end', lsn, uid: tx.uid, outcome, source, at: Date.now() }))], undefined, { lingerMs });
    } catch (e) {
      // Begin is durable: after a crash the check-back finds the fate again. Keep going in this process.
      this.deps.logger.error('tmm txlog: end record not written', { uid: tx.uid, outcome, error: String(e) });
    }
    tx.resolving = false;
    if (outcome === 'rollback') {
      this.txs.delete(tx.uid);
      this.finalBarrier(tx.begin);
    } else tx.phase = 'committed';
    this.dirty = true;
    if (outcome === 'commit') {
      this.counters.commits++;
      this.fault('end-synced');
      this.track(this.send(tx));
    } else {
      this.counters.rollbacks++;
    }
  }

  private async send(tx: TxState): Promise<void> {
    if (tx.sending || !this.txs.has(tx.uid)) return;
    tx.sending = true;
    try {
      const attempt = tx.sendAttempts + 1;
      const publishOne = (m: LoggedMessage): Promise<void> => {
        let published: Promise<void>;
        try {
          published = this.deps.transport.publish(toTransportMessage(fromLogged(m), attempt));
        } catch (e) {
          published = Promise.reject(e); // a transport that throws instead of rejecting: the same failed attempt
        }
        return published.then(
          () => {
            tx.confirmed.add(m.id);
            this.journeyStep(m, JourneyStep.Published, attempt);
          },
          (e: unknown) => {
            this.journeyStep(m, JourneyStep.PublishFailed, attempt, e instanceof Error ? e.message : String(e));
            throw e;
          },
        );
      };
      const unconfirmed = tx.begin.messages.filter((m) => !tx.confirmed.has(m.id));
      // One message (the usual transaction): its own outcome, without allSettled's promise per element.
      const results: PromiseSettledResult<void>[] =
        unconfirmed.length === 1
          ? [await publishOne(unconfirmed[0]).then(
              (): PromiseSettledResult<void> => ({ status: 'fulfilled', value: undefined }),
              (reason: unknown): PromiseSettledResult<void> => ({ status: 'rejected', reason }),
            )]
          : await Promise.allSettled(unconfirmed.map(publishOne));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        tx.sendAttempts = attempt;
        tx.lastError = String(failed.reason instanceof Error ? failed.reason.message : failed.reason);
        this.dirty = true;
        if (attempt >= this.o.maxSendAttempts) {
          this.toProblem(tx, 'DEAD', `publishing failed ${attempt} times: ${tx.lastError}`);
        } else {
          tx.nextSendAt = Date.now() + backoff(attempt, this.o.sendBackoff);
        }
        return;
      }
      this.fault('published');
      pushRecent(this.latencies, Date.now() - tx.startedAt, 100_000);
      // Lazy and not awaited: the Sent record rides in the next write batch (a begin or end record's) instead of
      // costing a sync of its own. Lost in a crash, it costs a duplicate after the restart, never a message.
      const uid = tx.uid;
      this.log.appendUnawaited((lsn) => [Buffer.from(sentRecordJson(lsn, uid, Date.now()))], SENT_LINGER_MS, (e) =>
        this.deps.logger.error('tmm txlog: Sent record not written (the messages may be sent again after a restart)', { uid, error: String(e) }),
      );
      this.counters.sent++;
      this.txs.delete(tx.uid);
      this.finalBarrier(tx.begin);
      this.dirty = true;
    } finally {
      tx.sending = false;
    }
  }

  /** A journey step of one logged message, when the journey is on. */
  private journeyStep(m: LoggedMessage, step: typeof JourneyStep.Published | typeof JourneyStep.PublishFailed, attempt: number, error?: string): void {
    const j = this.deps.journey;
    if (!j?.enabled) return;
    const where = `${m.exchange || '(default exchange)'} / ${m.routingKey}`;
    j.record({
      messageId: m.id,
      step,
      at: Date.now(),
      source: this.deps.instance ?? this.o.serviceName,
      attempt,
      ...(step === JourneyStep.Published ? { detail: `confirmed by the broker: ${where} (sent from the local transaction log)` } : { outcome: 'retry', detail: error }),
    });
  }

  private async checkBack(tx: TxState): Promise<void> {
    tx.checking = true;
    const via: CheckAttempt['via'] = tx.begin.check.url ? 'url' : tx.begin.check.barrier ? 'barrier' : 'checker';
    let verdict: CheckVerdict | 'error';
    let error: string | undefined;
    try {
      verdict = await withTimeout(this.ask(tx.begin, via), this.o.checkTimeoutMs, `check-back of ${tx.uid} via ${via}`);
    } catch (e) {
      verdict = 'error';
      error = e instanceof Error ? e.message : String(e);
    } finally {
      tx.checking = false;
    }
    this.counters.checks++;
    tx.checks.push({ at: Date.now(), via, verdict, ...(error ? { error } : {}) });
    this.dirty = true;
    if (tx.phase !== 'begun' || !this.txs.has(tx.uid)) return;
    if (verdict === 'commit' || verdict === 'rollback') {
      await this.resolve(tx, verdict, 'check-back');
      return;
    }
    if (tx.checks.length >= this.o.maxChecks) {
      this.toProblem(tx, 'EXCEPTION', `no verdict after ${tx.checks.length} check-backs (last: ${verdict}${error ? `: ${error}` : ''})`);
      return;
    }
    tx.nextCheckAt = Date.now() + backoff(tx.checks.length, this.o.checkBackoff);
  }

  private async ask(begin: BeginRecord, via: CheckAttempt['via']): Promise<CheckVerdict> {
    if (via === 'url') return httpCheck(begin.check.url!, begin, this.o.checkTimeoutMs);
    if (via === 'barrier') return this.barrier!.check(begin.check.key ?? begin.uid);
    const checker = begin.topics.map((t) => this.checkers.get(`topic:${t}`)).find(Boolean) ?? this.checkers.get(`service:${begin.serviceName}`);
    if (!checker) throw new Error(`no checker registered for topics ${begin.topics.join(', ')} or service ${begin.serviceName}`);
    const v = await checker({ uid: begin.uid, serviceName: begin.serviceName, topics: begin.topics });
    if (v !== 'commit' && v !== 'rollback' && v !== 'unknown') throw new Error(`checker answered ${JSON.stringify(v)}, expected "commit", "rollback" or "unknown"`);
    return v;
  }

  private toProblem(tx: TxState, state: 'EXCEPTION' | 'DEAD', reason: string): void {
    this.txs.delete(tx.uid);
    this.problems.set(tx.uid, {
      uid: tx.uid,
      state,
      reason,
      since: Date.now(),
      serviceName: tx.begin.serviceName,
      topics: tx.begin.topics,
      messages: tx.begin.messages,
      checks: tx.checks,
      sendAttempts: tx.sendAttempts,
      lastError: tx.lastError,
    });
    if (state === 'EXCEPTION') this.counters.exceptions++;
    else this.counters.dead++;
    this.deps.logger.error(`tmm txlog: transaction moved to ${state}`, { uid: tx.uid, reason });
    this.dirty = true;
  }

  private async publishProblem(p: TxLogProblem): Promise<void> {
    try {
      await Promise.all(p.messages.map((m) => this.deps.transport.publish(toTransportMessage(fromLogged(m), p.sendAttempts + 1))));
      // Sent in the log too: were the checkpoint still before its begin at a crash, replay must not revive it.
      await this.log.append((lsn) => [Buffer.from(JSON.stringify({ type: 'sent', lsn, uid: p.uid, at: Date.now() } satisfies SentRecord))]);
      this.problems.delete(p.uid);
      this.finalBarrier({ uid: p.uid });
      this.counters.sent++;
    } catch (e) {
      p.state = 'DEAD';
      p.sendAttempts++;
      p.lastError = e instanceof Error ? e.message : String(e);
    }
    await this.persistSnapshot();
  }

  private schedule(delay: number): void {
    if (!this.started) return;
    this.timer = setTimeout(() => {
      this.loopRunning = this.loop()
        .catch((e) => this.deps.logger.error('tmm txlog: analysis loop failed (the checkpoint stays; the records are processed again)', { error: String(e) }))
        .finally(() => {
          this.loopRunning = undefined;
          this.schedule(this.o.analysisIntervalMs);
        });
    }, delay);
    this.timer.unref?.();
  }

  /** One analysis pass: probe, repair when due, check back in-doubt, resend due, persist snapshot if changed, advance the checkpoint. */
  private async loop(): Promise<void> {
    await this.log.probe();
    const now = Date.now();
    if (!this.log.degraded) this.nextRepairAt = 0;
    else if (this.nextRepairAt === 0) this.nextRepairAt = now + this.o.repairIntervalMs; // first try one interval after the failure
    else if (now >= this.nextRepairAt) {
      this.nextRepairAt = now + this.o.repairIntervalMs;
      // The copy runs beside the loop; snapshot and checkpoint writes queue behind it (DualLog serializes them).
      if (this.log.live().length > 0) this.track(this.log.repair([CHECKPOINT, SNAPSHOT, LOG_ID]));
      else this.track(this.revive());
    }
    for (const tx of this.txs.values()) {
      if (tx.phase === 'begun' && !tx.checking && !tx.resolving && now - tx.begin.at >= this.o.inDoubtAfterMs && now >= tx.nextCheckAt) this.track(this.checkBack(tx));
      else if (tx.phase === 'committed' && !tx.sending && now >= tx.nextSendAt) this.track(this.send(tx));
    }
    await this.persistAndCheckpoint();
  }

  /** Every directory had failed: brings one back (DualLog.revive); its state files are rewritten at the next pass. */
  private async revive(): Promise<void> {
    if (!(await this.log.revive())) return;
    this.lastSnapshot = undefined; // its snapshot may be older than this process's state
    this.dirty = true;
  }

  /** Persists the snapshot if it changed, then advances the checkpoint and deletes the segments behind it. */
  private async persistAndCheckpoint(): Promise<void> {
    // Snapshot and checkpoint are taken at the same instant: the checkpoint never passes a transaction the snapshot does not hold.
    const candidate = this.computeCheckpoint();
    if (this.dirty) await this.persistSnapshot();
    if (candidate > this.checkpoint) {
      await this.log.writeAtomic(CHECKPOINT, JSON.stringify({ lsn: candidate, at: Date.now() }), 'checkpoint-temp');
      this.checkpoint = candidate;
      this.counters.checkpoints++;
      this.counters.segmentsDeleted += await this.log.deleteBelow(candidate);
    }
    await this.purgeBarrier();
  }

  /**
   * The transaction's fate is final. A row keyed `<log id>.<uid>` goes with its log's key range once every
   * earlier transaction is final too (purgeBarrier); only a legacy bare-uid row is queued here.
   */
  private finalBarrier(begin: Pick<BeginRecord, 'uid'> & { check?: BeginRecord['check'] }): void {
    if (!this.barrier || !begin.check?.barrier || begin.check.key) return;
    this.purgeQueue.push([begin.uid, Date.now()]);
    this.dirty = true;
  }

  /**
   * The uid below which every transaction of this log is final: the oldest begun-or-unsent transaction's, or
   * an EXCEPTION's (its barrier row is evidence the operator may still need); a fresh uuidv7 when there is none.
   * uids are uuidv7s taken in log order (one synchronous step with the lsn), so they sort as the log does.
   */
  private purgeWatermark(): string {
    let low = newMessageId();
    for (const uid of this.txs.keys()) if (uid < low) low = uid;
    for (const p of this.problems.values()) if (p.state === 'EXCEPTION' && UUID.test(p.uid) && p.uid < low) low = p.uid;
    return low;
  }

  /**
   * Every purge interval: deletes this log's barrier rows below the watermark that are older than the
   * retention (one key-range DELETE); then legacy bare-uid rows from the queue (up to 500 per pass).
   */
  private async purgeBarrier(): Promise<void> {
    if (!this.barrier) return;
    const now = Date.now();
    if (now >= this.nextPurgeAt) {
      this.nextPurgeAt = now + Math.min(60_000, Math.max(1000, Math.floor(this.o.barrierRetentionMs / 10)));
      try {
        this.counters.barrierPurged += await this.barrier.purgeBelow(this.logId, this.purgeWatermark(), now - this.o.barrierRetentionMs);
      } catch (e) {
        this.nextPurgeAt = 0;
        this.deps.logger.warn('tmm txlog: barrier purge failed (retried)', { error: String(e) });
      }
    }
    const before = now - this.o.barrierRetentionMs;
    let n = 0;
    while (n < this.purgeQueue.length && n < 500 && this.purgeQueue[n][1] <= before) n++;
    if (n === 0) return;
    const due = this.purgeQueue.slice(0, n);
    try {
      await this.barrier.purge(due.map(([uid]) => uid));
      this.purgeQueue.splice(0, n);
      this.counters.barrierPurged += n;
      this.dirty = true;
    } catch (e) {
      this.deps.logger.warn('tmm txlog: barrier purge failed (retried)', { error: String(e) });
    }
  }

  private computeCheckpoint(): number {
    let min = this.log.peekLsn();
    for (const tx of this.txs.values()) if (tx.beginLsn < min) min = tx.beginLsn;
    return min;
  }

  private async persistSnapshot(): Promise<void> {
    this.dirty = false;
    const txs: Snapshot['txs'] = {};
    for (const tx of this.txs.values()) if (tx.checks.length > 0 || tx.sendAttempts > 0) txs[tx.uid] = { checks: tx.checks, sendAttempts: tx.sendAttempts, lastError: tx.lastError };
    // Transactions that only moved between begun, committed and sent leave the snapshot as it was (it holds
    // what replay cannot rebuild: check-back history, send attempts, problems, the purge queue): under a
    // steady flow it stays empty, and writing it again every pass (temp file, fsync, rename, directory
    // fsync, on both disks) would change nothing on disk but the seq.
    const content = JSON.stringify({ txs, problems: [...this.problems.values()], purge: this.purgeQueue });
    if (content === this.lastSnapshot) return;
    const snap = `{"seq":${this.snapshotSeq + 1},${content.slice(1)}`;
    try {
      await this.log.writeAtomic(SNAPSHOT, snap, 'snapshot-temp');
    } catch (e) {
      this.dirty = true;
      this.lastSnapshot = undefined;
      throw e;
    }
    this.snapshotSeq++;
    this.lastSnapshot = content;
  }

  private countPhase(phase: TxState['phase']): number {
    let n = 0;
    for (const tx of this.txs.values()) if (tx.phase === phase) n++;
    return n;
  }

  private track(p: Promise<unknown>): void {
    // One reaction, not catch() and finally() (three promises per background task).
    const t: Promise<void> = p.then(
      () => {
        this.inFlight.delete(t);
      },
      (e: unknown) => {
        this.inFlight.delete(t);
        this.deps.logger.error('tmm txlog: background task failed', { error: String(e) });
      },
    );
    this.inFlight.add(t);
  }

  private fault(window: TxLogWindow): void {
    this.o.faultHook?.(window);
  }
}

/** A uid that JSON needs no escape for (uuidv7s, quarantine ids): the record is built as text. */
const PLAIN_UID = /^[\w.-]+$/;

/** The end record's JSON: the text JSON.stringify gives for it (same keys, same order), without walking an object. */
export function endRecordJson(r: EndRecord): string {
  if (!PLAIN_UID.test(r.uid)) return JSON.stringify(r);
  return `{"type":"end","lsn":${r.lsn},"uid":"${r.uid}","outcome":"${r.outcome}","source":"${r.source}","at":${r.at}}`;
}

/** The Sent record's JSON (as JSON.stringify gives it). */
export function sentRecordJson(lsn: number, uid: string, at: number): string {
  if (!PLAIN_UID.test(uid)) return JSON.stringify({ type: 'sent', lsn, uid, at } satisfies SentRecord);
  return `{"type":"sent","lsn":${lsn},"uid":"${uid}","at":${at}}`;
}

function newTx(begin: BeginRecord, lsn: number): TxState {
  return { uid: begin.uid, beginLsn: lsn, begin, phase: 'begun', checks: [], nextCheckAt: 0, checking: false, resolving: false, sendAttempts: 0, nextSendAt: 0, sending: false, confirmed: new Set(), startedAt: begin.at };
}

function toLogged(m: OutboxMessage): LoggedMessage {
  return { id: m.id, topic: m.topic, exchange: m.exchange, routingKey: m.routingKey, payload: m.payload, headers: m.headers, createdAt: m.createdAt };
}

function fromLogged(m: LoggedMessage): OutboxMessage {
  // A literal, not a spread (this runs per published message; a spread of a parsed record is several times slower).
  return { id: m.id, topic: m.topic, exchange: m.exchange, routingKey: m.routingKey, payload: m.payload, headers: m.headers, createdAt: m.createdAt, availableAt: m.createdAt, orderingKey: null };
}

function backoff(n: number, o: { initialDelayMs?: number; maxDelayMs?: number }): number {
  return Math.min(o.maxDelayMs ?? 60_000, (o.initialDelayMs ?? 1000) * 2 ** Math.max(0, n - 1));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms);
    }),
  ]);
}

function checkOptions(o: TxLogOptions): void {
  if (!o || typeof o !== 'object') throw new ConfigurationError('txlog', 'must be an object with { directories }');
  if (!Array.isArray(o.directories) || o.directories.length < 1 || o.directories.length > 2 || o.directories.some((d) => typeof d !== 'string' || d.length === 0)) {
    throw new ConfigurationError('txlog.directories', 'must be one or two directory paths (two: on two disks)');
  }
  if (o.directories.length === 2 && o.directories[0] === o.directories[1]) throw new ConfigurationError('txlog.directories', 'the two directories must differ');
  const positive = ['segmentBytes', 'analysisIntervalMs', 'maxChecks', 'checkTimeoutMs', 'maxSendAttempts', 'repairIntervalMs'] as const;
  for (const k of positive) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new ConfigurationError(`txlog.${k}`, `must be a positive integer, got ${String(v)}`);
  }
  for (const k of ['inDoubtAfterMs', 'barrierRetentionMs'] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new ConfigurationError(`txlog.${k}`, `must be a non-negative integer, got ${String(v)}`);
  }
  if (o.checkUrl !== undefined) {
    try {
      new URL(o.checkUrl);
    } catch {
      throw new ConfigurationError('txlog.checkUrl', `must be an absolute URL, got ${JSON.stringify(o.checkUrl)}`);
    }
  }
  if (o.faultHook !== undefined && typeof o.faultHook !== 'function') throw new ConfigurationError('txlog.faultHook', 'must be a function');
}
