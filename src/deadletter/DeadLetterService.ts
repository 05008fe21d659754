import type { EntityManager } from 'typeorm';
import { ConsumerHeaders } from '../consumer/ConsumerHeaders';
import { InputProblem, InvalidInputError, MessageValidationError, NotFoundError, PayloadTooLargeError, StateConflictError } from '../errors';
import { Logger, silentLogger } from '../logging/Logger';
import { ContractClass, deserializeContract, validateContract } from '../message/MessageContracts';
import { OutboxMessage, OutboxStatus, TmmHeaders } from '../message/OutboxMessage';
import { newMessageId } from '../message/messageId';
import type { OutboxStore } from '../outbox/OutboxStore';
import type { Dispatcher } from '../relay/Dispatcher';
import { JourneyStep, type JourneyRecorder } from '../journey/JourneyEvent';
import { TraceHeaders } from '../tracing/MessageTracer';
import type { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import type { AuditEntry, AuditTrail } from './AuditTrail';
import { DeadLetter, DeadLetterFilter, DeadLetterStatus } from './DeadLetter';
import { DeadLetterHeaders, withoutFailureHeaders } from './DeadLetterHeaders';
import type { DeadLetterStore } from './DeadLetterStore';
import type { OutboxAdminStore } from './OutboxAdminStore';

export interface DeadLetterServiceDeps {
  transactions: TypeOrmTransactionManager;
  outbox: OutboxStore;
  deadLetters: DeadLetterStore;
  outboxAdmin: OutboxAdminStore;
  audit: AuditTrail;
  /** Publishes resent messages right after commit; without it they wait for a relay's sweep. */
  dispatcher?: Dispatcher;
  /** Woken after outbox rows were revived, so they go out now rather than at the next poll. */
  relay?: { nudge(): void };
  /** This process's lease owner name (resent rows are leased to it when a dispatcher publishes them). */
  owner: string;
  leaseMs?: number;
  /** Edited payloads larger than this are refused (producer.maxPayloadBytes). */
  maxPayloadBytes?: number;
  /**
   * The @MessageContract class(es) an edited payload of this dead letter must satisfy (all of them), when
   * this process knows any: see contractsForDeadLetter (the local consumer's, else the contract registry's
   * for the letter's topic and version). Called with the stored dead letter.
   */
  contractFor?: (letter: DeadLetter) => ContractClass | readonly ContractClass[] | undefined;
  logger?: Logger;
  /** Records `resent` / `discarded` on the original message and `stored` on a resent copy, after commit (default: none). */
  journey?: JourneyRecorder;
}

/** Where a resend goes: the consumer's own queue (default when known), or the original exchange and routing key. */
export type ResendTarget = 'queue' | 'route';

export interface ResendOptions {
  /** Edited payload (JSON text); the dead letter keeps the original. Single resends only. */
  payload?: string;
  to?: ResendTarget;
  comment?: string;
}

export interface ActionResult {
  /** Dead letter (or outbox row) ids the action applied to. */
  done: string[];
  /** Ids it did not apply to, with their status (already resent, discarded, not DEAD…) or `missing`. */
  skipped: { id: string; status: string }[];
  /** For resends: dead letter id → the new message id. */
  messages?: Record<string, string>;
}

/** Rows per transaction in bulk actions: short transactions, bounded statement sizes. */
const CHUNK = 200;
const RESENDABLE: DeadLetterStatus[] = [DeadLetterStatus.New, DeadLetterStatus.Discarded];
const DISCARDABLE: DeadLetterStatus[] = [DeadLetterStatus.New];
const STUCK: OutboxStatus[] = [OutboxStatus.Dead, OutboxStatus.Exception];

/**
 * What an operator does with dead letters and stuck outbox rows. Every action runs in one transaction
 * with its audit entries (principal, time, before/after): it happens with its entry or not at all.
 *
 * - resend: appends a new outbox message (new id; headers `tmm-resend-of`, `tmm-dead-letter-id`, the
 *   original route, no failure headers) in the same transaction that marks the dead letter RESENT, so a
 *   resend is as reliable as any transactional send; published right after commit by the dispatcher when
 *   there is one, else by the next relay sweep. Sent to the consumer's own queue through the default
 *   exchange (only the consumer that failed gets it again), or with `to: 'route'` to the original route.
 * - edit + resend: the edited payload must be a JSON object and satisfy the contract when one is known:
 *   the local consumer's, else every @MessageContract class loaded for the letter's topic and contract
 *   version (contractsForDeadLetter); the dead letter keeps its original payload, the audit entry both.
 * - discard: NEW → DISCARDED.
 * - bulk: the same by filter or ids, in chunks of 200 per transaction; rows another operator changed
 *   meanwhile are skipped, never acted on twice.
 * - outbox rows: retry (DEAD/EXCEPTION → PENDING, due now, attempts 0) or discard (deleted; the audit
 *   entry keeps the whole row).
 */
export class DeadLetterService {
  private readonly logger: Logger;

  constructor(private readonly deps: DeadLetterServiceDeps) {
    this.logger = deps.logger ?? silentLogger;
  }

  /** Resends one dead letter; throws NotFoundError, StateConflictError, InvalidInputError, PayloadTooLargeError. */
  async resendOne(principal: string, id: string, options: ResendOptions = {}): Promise<{ messageId: string }> {
    const letter = await this.deps.deadLetters.get(id);
    if (!letter) throw new NotFoundError(`dead letter ${id}`);
    if (options.payload !== undefined) await this.checkPayload(letter, options.payload);
    const result = await this.resend(principal, [id], options);
    if (result.done.length === 0) {
      const current = await this.deps.deadLetters.get(id);
      throw new StateConflictError(`dead letter ${id}`, current?.status ?? 'missing', 'resend');
    }
    return { messageId: result.messages![id] };
  }

  async discardOne(principal: string, id: string, comment?: string): Promise<void> {
    const letter = await this.deps.deadLetters.get(id);
    if (!letter) throw new NotFoundError(`dead letter ${id}`);
    const result = await this.discard(principal, [id], comment);
    if (result.done.length === 0) {
      const current = await this.deps.deadLetters.get(id);
      throw new StateConflictError(`dead letter ${id}`, current?.status ?? 'missing', 'discard');
    }
  }

  /** Resends the given dead letters (those still NEW or DISCARDED); an edited payload only with one id. */
  async resend(principal: string, ids: string[], options: ResendOptions = {}): Promise<ActionResult> {
    if (options.payload !== undefined && ids.length !== 1) throw new InvalidInputError('an edited payload can only be resent for one dead letter at a time');
    const result: ActionResult = { done: [], skipped: [], messages: {} };
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = [...new Set(ids.slice(i, i + CHUNK))];
      const sent: OutboxMessage[] = [];
      const resent: { letter: DeadLetter; message: OutboxMessage; at: number }[] = [];
      const lease = this.deps.dispatcher ? { owner: this.deps.owner, until: Date.now() + (this.deps.leaseMs ?? 30_000) } : undefined;
      await this.deps.transactions.run(
        async () => {
          const manager = this.deps.transactions.manager;
          const letters = await this.deps.deadLetters.lock(manager, chunk, RESENDABLE);
          if (letters.length === 0) return;
          const now = Date.now();
          const messageIds = new Map<string, string>();
          const entries: Omit<AuditEntry, 'id'>[] = [];
          for (const letter of letters) {
            const message = resendMessage(letter, options.payload ?? letter.payload, options.to ?? 'queue', now);
            sent.push(message);
            resent.push({ letter, message, at: now });
            messageIds.set(letter.id, message.id);
            const edited = options.payload !== undefined && options.payload !== letter.payload;
            entries.push({
              at: now,
              principal,
              action: edited ? 'dead-letter.edit-resend' : 'dead-letter.resend',
              targetType: 'dead-letter',
              targetId: letter.id,
              before: { status: letter.status, ...(edited ? { payload: letter.payload } : {}) },
              after: {
                status: DeadLetterStatus.Resent,
                resentMessageId: message.id,
                exchange: message.exchange,
                routingKey: message.routingKey,
                ...(edited ? { payload: message.payload } : {}),
              },
              comment: options.comment ?? null,
            });
          }
          await this.deps.outbox.append(manager, sent, lease);
          await this.deps.deadLetters.setStatus(
            manager,
            letters.map((l) => l.id),
            { from: RESENDABLE, to: DeadLetterStatus.Resent, at: now, by: principal, resentMessageIds: messageIds },
          );
          await this.deps.audit.record(manager, entries);
          for (const [id, messageId] of messageIds) {
            result.done.push(id);
            result.messages![id] = messageId;
          }
        },
        { name: 'tmm.admin.resend' },
      );
      if (sent.length > 0) {
        // Committed: the copies are stored; recorded before the dispatch so `stored` precedes their `published`.
        if (this.deps.journey?.enabled) this.recordResent(principal, resent, options.payload !== undefined);
        if (this.deps.dispatcher) this.deps.dispatcher.dispatch(sent);
        else this.deps.relay?.nudge();
        this.logger.info('dead letters resent', { principal, count: sent.length });
      }
      await this.addSkipped(result, chunk);
    }
    return result;
  }

  private recordResent(principal: string, resent: { letter: DeadLetter; message: OutboxMessage; at: number }[], edited: boolean): void {
    const journey = this.deps.journey!;
    const source = `admin:${principal}`;
    const committed = Date.now();
    for (const { letter, message, at } of resent) {
      const where = message.exchange === '' ? `queue ${message.routingKey}` : `${message.exchange} / ${message.routingKey}`;
      journey.record({ messageId: letter.messageId, step: JourneyStep.Resent, at, source, linkedId: message.id, detail: `dead letter ${letter.id} resent${edited ? ' with an edited payload' : ''} as ${message.id} to ${where}` });
      const correlationId = message.headers[TraceHeaders.correlationId];
      journey.record({
        messageId: message.id,
        step: JourneyStep.Stored,
        at: committed,
        source,
        linkedId: letter.messageId,
        detail: `resend of ${letter.messageId} (dead letter ${letter.id}), committed to tmm_outbox`,
        correlationId: typeof correlationId === 'string' ? correlationId : null,
      });
    }
  }

  async discard(principal: string, ids: string[], comment?: string): Promise<ActionResult> {
    const discarded: DeadLetter[] = [];
    const result = await this.inChunks(
      ids,
      'tmm.admin.discard',
      async (manager, chunk) => {
        const letters = await this.deps.deadLetters.lock(manager, chunk, DISCARDABLE);
        if (letters.length === 0) return [];
        const now = Date.now();
        await this.deps.deadLetters.setStatus(manager, letters.map((l) => l.id), { from: DISCARDABLE, to: DeadLetterStatus.Discarded, at: now, by: principal });
        discarded.push(...letters);
        await this.deps.audit.record(
          manager,
          letters.map((l) => ({
            at: now,
            principal,
            action: 'dead-letter.discard',
            targetType: 'dead-letter' as const,
            targetId: l.id,
            before: { status: l.status },
            after: { status: DeadLetterStatus.Discarded },
            comment: comment ?? null,
          })),
        );
        return letters.map((l) => l.id);
      },
      (r, chunk) => this.addSkipped(r, chunk),
    );
    if (result.done.length > 0) this.logger.info('dead letters discarded', { principal, count: result.done.length });
    const journey = this.deps.journey;
    if (journey?.enabled) {
      const done = new Set(result.done);
      const at = Date.now();
      for (const l of discarded) {
        if (done.has(l.id)) journey.record({ messageId: l.messageId, step: JourneyStep.Discarded, at, source: `admin:${principal}`, detail: `dead letter ${l.id}${comment ? `: ${comment}` : ''}` });
      }
    }
    return result;
  }

  /** Bulk resend of the dead letters matching a filter (NEW and DISCARDED ones unless the filter says), at most `limit`. */
  async resendMatching(principal: string, filter: DeadLetterFilter, limit: number, options: Omit<ResendOptions, 'payload'> = {}): Promise<ActionResult & { matched: number }> {
    const ids = await this.deps.deadLetters.ids({ ...filter, status: filter.status ?? [DeadLetterStatus.New] }, limit);
    return { matched: ids.length, ...(await this.resend(principal, ids, options)) };
  }

  async discardMatching(principal: string, filter: DeadLetterFilter, limit: number, comment?: string): Promise<ActionResult & { matched: number }> {
    const ids = await this.deps.deadLetters.ids({ ...filter, status: filter.status ?? [DeadLetterStatus.New] }, limit);
    return { matched: ids.length, ...(await this.discard(principal, ids, comment)) };
  }

  /** DEAD/EXCEPTION outbox rows → PENDING, due now, attempts reset; the relay publishes them. */
  async retryOutbox(principal: string, ids: string[], comment?: string): Promise<ActionResult> {
    const result = await this.inChunks(
      ids,
      'tmm.admin.outbox-retry',
      async (manager, chunk) => {
        const rows = await this.deps.outboxAdmin.lock(manager, chunk, STUCK);
        if (rows.length === 0) return [];
        const now = Date.now();
        await this.deps.outboxAdmin.revive(manager, rows.map((r) => r.id), now);
        await this.deps.audit.record(
          manager,
          rows.map((r) => ({
            at: now,
            principal,
            action: 'outbox.retry',
            targetType: 'outbox' as const,
            targetId: r.id,
            before: { status: r.status, attempts: r.attempts, availableAt: r.availableAt, lastError: r.lastError },
            after: { status: OutboxStatus.Pending, attempts: 0, availableAt: now },
            comment: comment ?? null,
          })),
        );
        return rows.map((r) => r.id);
      },
      (r, chunk) => this.addSkippedOutbox(r, chunk),
    );
    if (result.done.length > 0) {
      this.deps.relay?.nudge();
      this.logger.info('outbox rows retried', { principal, count: result.done.length });
    }
    return result;
  }

  /** Deletes DEAD/EXCEPTION outbox rows; the audit entry keeps each whole row. */
  async discardOutbox(principal: string, ids: string[], comment?: string): Promise<ActionResult> {
    const result = await this.inChunks(
      ids,
      'tmm.admin.outbox-discard',
      async (manager, chunk) => {
        const rows = await this.deps.outboxAdmin.lock(manager, chunk, STUCK);
        if (rows.length === 0) return [];
        const now = Date.now();
        await this.deps.outboxAdmin.remove(manager, rows.map((r) => r.id));
        await this.deps.audit.record(
          manager,
          rows.map((r) => ({ at: now, principal, action: 'outbox.discard', targetType: 'outbox' as const, targetId: r.id, before: r, after: null, comment: comment ?? null })),
        );
        return rows.map((r) => r.id);
      },
      (r, chunk) => this.addSkippedOutbox(r, chunk),
    );
    if (result.done.length > 0) this.logger.info('outbox rows discarded', { principal, count: result.done.length });
    return result;
  }

  /**
   * Runs `fn` on the distinct ids, CHUNK at a time, each chunk in a transaction of its own (so one bad chunk
   * does not undo the others); `fn` returns the ids it acted on, `skipped` then explains the rest of the chunk.
   */
  private async inChunks(
    ids: string[],
    name: string,
    fn: (manager: EntityManager, chunk: string[]) => Promise<string[]>,
    skipped: (result: ActionResult, chunk: string[]) => Promise<void>,
  ): Promise<ActionResult> {
    const result: ActionResult = { done: [], skipped: [] };
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = [...new Set(ids.slice(i, i + CHUNK))];
      const done = await this.deps.transactions.run(() => fn(this.deps.transactions.manager, chunk), { name });
      result.done.push(...done);
      await skipped(result, chunk);
    }
    return result;
  }

  /**
   * Checks an edited payload: size, a JSON object, and the contract(s) `contractFor` gives for the stored
   * letter (class-validator; every one of them must pass, a violation of any is reported). Throws
   * InvalidInputError (with each failed constraint) or PayloadTooLargeError; changes nothing.
   */
  async checkPayload(letter: DeadLetter, payload: string): Promise<void> {
    const size = Buffer.byteLength(payload, 'utf8');
    const max = this.deps.maxPayloadBytes ?? 256 * 1024;
    if (size > max) throw new PayloadTooLargeError(letter.topic, size, max);
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch (e) {
      throw new InvalidInputError(`payload is not valid JSON: ${(e as Error).message}`, [{ path: 'payload', message: 'not valid JSON' }]);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new InvalidInputError('payload must be a JSON object', [{ path: 'payload', message: 'must be a JSON object' }]);
    }
    const found = this.deps.contractFor?.(letter);
    const contracts: readonly ContractClass[] = found === undefined ? [] : Array.isArray(found) ? found : [found as ContractClass];
    const failed: MessageValidationError[] = [];
    for (const contract of contracts) {
      try {
        // As the consumer reads it: unknown properties are stripped there, so they are not an error here.
        await validateContract(deserializeContract(contract, payload), contract.name, { rejectUnknownProperties: false });
      } catch (e) {
        if (e instanceof MessageValidationError) failed.push(e);
        else throw e;
      }
    }
    if (failed.length === 0) return;
    const problems = new Map<string, InputProblem>();
    for (const e of failed) {
      for (const v of e.violations) {
        const problem = { path: `payload.${v.property}`, message: v.message };
        problems.set(`${problem.path}\u0000${problem.message}`, problem);
      }
    }
    throw new InvalidInputError(
      failed.map((e) => `payload does not satisfy contract ${e.contract}: ${e.violations.map((v) => `${v.property}: ${v.message}`).join('; ')}`).join('; '),
      [...problems.values()],
    );
  }

  private async addSkipped(result: ActionResult, chunk: string[]): Promise<void> {
    const done = new Set(result.done);
    for (const id of chunk) {
      if (done.has(id)) continue;
      const current = await this.deps.deadLetters.get(id);
      result.skipped.push({ id, status: current?.status ?? 'missing' });
    }
  }

  private async addSkippedOutbox(result: ActionResult, chunk: string[]): Promise<void> {
    const done = new Set(result.done);
    for (const id of chunk) {
      if (done.has(id)) continue;
      const current = await this.deps.outbox.get(id).catch(() => undefined);
      result.skipped.push({ id, status: current?.status ?? 'missing' });
    }
  }
}

/** The outbox message that resends a dead letter. */
export function resendMessage(letter: DeadLetter, payload: string, to: ResendTarget, now: number): OutboxMessage {
  const toQueue = to === 'queue' && letter.queue !== null;
  // The stored bytes as they came (base64 in the row) unless an operator edited the payload (JSON text).
  const binary = letter.payloadEncoding === 'base64' && payload === letter.payload;
  return {
    id: newMessageId(),
    topic: letter.topic,
    exchange: toQueue ? '' : letter.originalExchange,
    routingKey: toQueue ? letter.queue! : letter.originalRoutingKey,
    payload,
    headers: {
      ...withoutFailureHeaders(letter.headers),
      // The consumer sees the original route (ctx.exchange/routingKey), not the default exchange.
      [ConsumerHeaders.originalExchange]: letter.originalExchange,
      [ConsumerHeaders.originalRoutingKey]: letter.originalRoutingKey,
      [DeadLetterHeaders.resendOf]: letter.messageId,
      [DeadLetterHeaders.deadLetterId]: letter.id,
      ...(binary ? { [TmmHeaders.payloadEncoding]: 'base64' } : {}),
    },
    availableAt: now,
    orderingKey: null,
    createdAt: now,
  };
}
