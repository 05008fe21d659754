import * as amqp from 'amqplib';
import { ConfigurationError, QueueMigrationError, TopologyError } from '../../errors';
import { type Logger, redactUrl } from '../../logging/Logger';
import type { QueueSpec, Topology } from '../Transport';
import { errorText, replyCode } from './amqpErrors';
import { queueArguments, validateTopology } from './amqpTopology';

/** What a queue was found to be. */
export type QueueKind = 'classic' | 'quorum' | 'absent';

/** The part a queue plays in tmm's topology (from the specs: who dead-letters into whom). */
export type QueueRole = 'work' | 'retry' | 'dead-letter';

export interface QuorumMigrationOptions {
  /** `amqp[s]://user:password@host:port/vhost`. */
  url: string;
  /**
   * The queues to migrate as tmm declares them (`tmm.consumers.topology()`: work, retry and dead-letter
   * queues with their bindings and arguments); their `type` is ignored (the target is quorum). The
   * exchanges are declared first (as tmm does) so that the bindings can be made.
   */
  topology: Topology;
  /** Messages moved at once (consumed, published and not yet confirmed); default 256. */
  prefetch?: number;
  logger?: Logger;
  /** How long to wait for the connection; default 10 s. */
  connectTimeoutMs?: number;
}

export interface QueueMigrationReport {
  queue: string;
  role: QueueRole;
  /** What the queue was when this run started (`quorum` with its holding queue present: an earlier run was cut short). */
  before: QueueKind;
  /** Whether this run found the holding queue of an earlier, interrupted run. */
  resumed: boolean;
  /** Messages moved from the original queue into the holding queue in this run. */
  parked: number;
  /** Messages moved from the holding queue into the quorum queue in this run. */
  restored: number;
  after: QueueKind;
}

export interface QuorumMigrationReport {
  queues: QueueMigrationReport[];
  /** Messages this run moved into the quorum queues. */
  restored: number;
}

/** The holding queue of `queue` while it is migrated: a plain quorum queue (no TTL, no dead-lettering). */
export function holdingQueueName(queue: string): string {
  return `${queue}.tmm-migration`;
}

/** Per-message `expiration` of a parked message, kept here while it waits (the holding queue must not expire it). */
export const PARKED_EXPIRATION_HEADER = 'tmm-migration-expiration';
/** Only one migration per virtual host at a time: an exclusive queue of this name is the lock. */
export const MIGRATION_LOCK_QUEUE = 'tmm-quorum-migration.lock';

const RETRY_FAILURE_HEADER = 'tmm-last-failure-at';
const DELETE_ATTEMPTS = 10;

interface Planned {
  spec: QueueSpec;
  role: QueueRole;
  holding: string;
  before: QueueKind;
  resumed: boolean;
  parked: number;
  restored: number;
}

/**
 * Moves tmm's classic queues to quorum queues of the same names and arguments, without losing a message.
 * Run it with the consumers of these queues stopped (a queue with consumers is refused); relays may keep
 * publishing: every binding is held by the queue or by its holding queue at every moment.
 *
 * Per queue, in three phases over all queues (so nothing ever dead-letters into a queue that is briefly
 * gone): (1) park: declare the holding queue `<name>.tmm-migration` (quorum, nothing expires there), bind
 * it like the queue, unbind the queue, move every message into it; (2) replace: delete the emptied
 * classic queue, declare the quorum queue with tmm's arguments, bind it, unbind the holding queue;
 * (3) restore: move the messages back and delete the holding queue. Parking goes from retry to work to
 * dead-letter queues (a queue is emptied before the one it expires into), replacing and restoring the
 * other way round.
 *
 * Moving = consume with manual acks, publish to the target through the default exchange on a confirm
 * channel (mandatory), ack the source only after the broker confirmed the copy: a crash in between leaves
 * the message in both queues (a duplicate, never a loss); so does a publish in the instant both the queue
 * and its holding queue are bound (bind first, unbind second: never a moment without a route). Properties and headers are copied as received;
 * a parked message's own `expiration` travels in the PARKED_EXPIRATION_HEADER header and is restored. A
 * retry-queue message goes back with the `expiration` its delay has left (queue TTL minus the time since
 * its `tmm-last-failure-at`), so its retry is not pushed back by the migration.
 *
 * Resumable: the state is what the broker shows (which queues are classic, quorum, absent; which holding
 * queues exist), so a run after a crash at any point finishes the job. Already migrated queues are left
 * alone. Throws QueueMigrationError (reason: consumers-attached, arguments-differ, locked, unavailable,
 * failed); TopologyError for specs RabbitMQ would misread; ConfigurationError for a bad prefetch.
 */
export async function migrateQueuesToQuorum(options: QuorumMigrationOptions): Promise<QuorumMigrationReport> {
  validateTopology(options.topology);
  const prefetch = options.prefetch ?? 256;
  if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) throw new ConfigurationError('prefetch', `must be an integer from 1 to 65535, got ${prefetch}`);
  const specs = dedupe(options.topology.queues ?? []);
  const log = options.logger;
  let conn: amqp.ChannelModel;
  try {
    conn = await amqp.connect(options.url, { timeout: options.connectTimeoutMs ?? 10_000, clientProperties: { connection_name: 'tmm-quorum-migration' } });
  } catch (e) {
    throw new QueueMigrationError('unavailable', `cannot connect to ${redactUrl(options.url)}: ${errorText(e)}`, { cause: e });
  }
  conn.on('error', () => undefined);
  try {
    await takeLock(conn);
    for (const ex of options.topology.exchanges ?? []) {
      await onChannel(conn, (ch) => ch.assertExchange(ex.name, ex.type ?? 'topic', { durable: true, autoDelete: false, internal: false }));
    }
    const plan: Planned[] = [];
    for (const spec of orderSourcesFirst(specs)) {
      const holding = holdingQueueName(spec.name);
      const before = await kindOf(conn, spec);
      const resumed = (await countOf(conn, holding)) !== undefined;
      plan.push({ spec, role: roleOf(spec, specs), holding, before, resumed, parked: 0, restored: 0 });
    }
    for (const p of plan) await refuseConsumers(conn, p);

    // 1. Park: sources first, so nothing expires into a queue that is being emptied.
    for (const p of plan) {
      if (p.before !== 'classic') continue;
      await declareHolding(conn, p.holding);
      for (const b of p.spec.bindings ?? []) await onChannel(conn, (ch) => ch.bindQueue(p.holding, b.exchange, b.routingKey));
      for (const b of p.spec.bindings ?? []) await onChannel(conn, (ch) => ch.unbindQueue(p.spec.name, b.exchange, b.routingKey));
      p.parked += await move(conn, p.spec.name, p.holding, prefetch, park);
      log?.info('quorum migration: parked', { queue: p.spec.name, messages: p.parked });
    }
    // 2. Replace: targets first.
    const targetsFirst = [...plan].reverse();
    for (const p of targetsFirst) {
      if (p.before === 'quorum' && !p.resumed) continue;
      if (p.before === 'absent' && !p.resumed) continue;
      if (p.before === 'classic') p.parked += await deleteEmptied(conn, p.spec.name, p.holding, prefetch);
      await onChannel(conn, (ch) => ch.assertQueue(p.spec.name, { durable: true, exclusive: false, autoDelete: false, arguments: queueArguments({ ...p.spec, type: 'quorum' }) }));
      for (const b of p.spec.bindings ?? []) await onChannel(conn, (ch) => ch.bindQueue(p.spec.name, b.exchange, b.routingKey));
      for (const b of p.spec.bindings ?? []) await onChannel(conn, (ch) => ch.unbindQueue(p.holding, b.exchange, b.routingKey));
    }
    // 3. Restore: targets first, so what expires finds its target.
    for (const p of targetsFirst) {
      if ((await countOf(conn, p.holding)) === undefined) continue;
      const now = Date.now();
      p.restored += await move(conn, p.holding, p.spec.name, prefetch, (m) => restore(m, p, now));
      await deleteEmptiedHolding(conn, p, prefetch, now);
      log?.info('quorum migration: restored', { queue: p.spec.name, messages: p.restored });
    }
    const queues: QueueMigrationReport[] = [];
    for (const p of plan) {
      queues.push({ queue: p.spec.name, role: p.role, before: p.before, resumed: p.resumed, parked: p.parked, restored: p.restored, after: await kindOf(conn, p.spec) });
    }
    return { queues, restored: queues.reduce((n, q) => n + q.restored, 0) };
  } catch (e) {
    if (e instanceof QueueMigrationError || e instanceof TopologyError || e instanceof ConfigurationError) throw e;
    throw new QueueMigrationError('failed', `quorum migration stopped: ${errorText(e)} (run it again to finish; nothing is lost)`, { cause: e });
  } finally {
    await conn.close().catch(() => undefined);
  }
}

function dedupe(queues: readonly QueueSpec[]): QueueSpec[] {
  const byName = new Map<string, QueueSpec>();
  for (const q of queues) {
    const seen = byName.get(q.name);
    if (seen && JSON.stringify(queueArguments({ ...seen, type: 'quorum' })) !== JSON.stringify(queueArguments({ ...q, type: 'quorum' }))) {
      throw new TopologyError(`queue "${q.name}" is listed twice with different arguments`);
    }
    if (!seen) byName.set(q.name, q);
  }
  return [...byName.values()];
}

/** The queue a spec dead-letters into through the default exchange, when it names one of the specs. */
function deadLetterTarget(spec: QueueSpec, all: readonly QueueSpec[]): QueueSpec | undefined {
  if (spec.deadLetterExchange !== '' || spec.deadLetterRoutingKey === undefined) return undefined;
  return all.find((q) => q.name === spec.deadLetterRoutingKey && q !== spec);
}

function roleOf(spec: QueueSpec, all: readonly QueueSpec[]): QueueRole {
  // A retry queue is fed by tmm's consumers through the default exchange only and expires into a work queue.
  if (spec.messageTtl !== undefined && (spec.bindings ?? []).length === 0 && deadLetterTarget(spec, all)) return 'retry';
  if (all.some((q) => deadLetterTarget(q, all) === spec) && spec.deadLetterExchange === undefined) return 'dead-letter';
  return 'work';
}

/** Sources before the queues they dead-letter into (retry → work → dead-letter); a cycle keeps the given order. */
function orderSourcesFirst(specs: readonly QueueSpec[]): QueueSpec[] {
  const depth = (q: QueueSpec, seen = new Set<QueueSpec>()): number => {
    const t = deadLetterTarget(q, specs);
    if (!t || seen.has(t)) return 0;
    seen.add(q);
    return 1 + depth(t, seen);
  };
  return specs.map((q, i) => ({ q, i, d: depth(q) })).sort((a, b) => b.d - a.d || a.i - b.i).map((x) => x.q);
}

/** Runs one broker operation on a channel of its own, so that a 404 or 406 closes only that channel. */
export async function onChannel<T>(conn: amqp.ChannelModel, fn: (ch: amqp.Channel) => Promise<T>): Promise<T> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

async function takeLock(conn: amqp.ChannelModel): Promise<void> {
  // Exclusive queues belong to their connection: the lock goes when this process does, even on SIGKILL.
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    await ch.assertQueue(MIGRATION_LOCK_QUEUE, { exclusive: true, durable: false, autoDelete: true });
  } catch (e) {
    if (replyCode(e) === 405) throw new QueueMigrationError('locked', 'another quorum migration is running on this virtual host (it holds the exclusive queue tmm-quorum-migration.lock)', { cause: e });
    throw e;
  }
}

/** Message count of a queue, or undefined when it does not exist. */
async function countOf(conn: amqp.ChannelModel, queue: string): Promise<{ messages: number; consumers: number } | undefined> {
  try {
    const q = await onChannel(conn, (ch) => ch.checkQueue(queue));
    return { messages: q.messageCount, consumers: q.consumerCount };
  } catch (e) {
    if (replyCode(e) === 404) return undefined;
    throw e;
  }
}

/**
 * Classic or quorum as tmm declares it (tried by redeclaring with each set of arguments: RabbitMQ answers
 * 406 to the wrong one), or absent. Anything else is refused rather than guessed at.
 */
async function kindOf(conn: amqp.ChannelModel, spec: QueueSpec): Promise<QueueKind> {
  if ((await countOf(conn, spec.name)) === undefined) return 'absent';
  const declareAs = (type: 'classic' | 'quorum') => onChannel(conn, (ch) => ch.assertQueue(spec.name, { durable: true, exclusive: false, autoDelete: false, arguments: queueArguments({ ...spec, type }) }));
  const asQuorum = await declareAs('quorum').then(() => undefined, (e: unknown) => e);
  if (asQuorum === undefined) return 'quorum';
  if (replyCode(asQuorum) !== 406) throw asQuorum;
  const asClassic = await declareAs('classic').then(() => undefined, (e: unknown) => e);
  if (asClassic === undefined) return 'classic';
  if (replyCode(asClassic) !== 406) throw asClassic;
  throw new QueueMigrationError(
    'arguments-differ',
    `queue "${spec.name}" exists with arguments that are neither tmm's classic nor its quorum declaration of it (${errorText(asClassic)}); check the topology given (TTL, dead-letter queue, ordered) against the running consumers`,
    { cause: asClassic },
  );
}

async function refuseConsumers(conn: amqp.ChannelModel, p: Planned): Promise<void> {
  for (const name of [p.spec.name, p.holding]) {
    const c = await countOf(conn, name);
    if (c && c.consumers > 0) throw new QueueMigrationError('consumers-attached', `queue "${name}" has ${c.consumers} consumer(s): stop the consumers of every queue being migrated first`);
  }
}

async function declareHolding(conn: amqp.ChannelModel, holding: string): Promise<void> {
  await onChannel(conn, (ch) => ch.assertQueue(holding, { durable: true, exclusive: false, autoDelete: false, arguments: { 'x-queue-type': 'quorum' } }));
}

/** Deletes the (parked) classic queue; whatever arrived after parking is moved first, until the delete finds it empty. */
async function deleteEmptied(conn: amqp.ChannelModel, queue: string, holding: string, prefetch: number): Promise<number> {
  let moved = 0;
  for (let i = 0; i < DELETE_ATTEMPTS; i++) {
    moved += await move(conn, queue, holding, prefetch, park);
    try {
      await onChannel(conn, (ch) => ch.deleteQueue(queue, { ifEmpty: true, ifUnused: true }));
      return moved;
    } catch (e) {
      if (replyCode(e) !== 406) throw e;
    }
  }
  throw new QueueMigrationError('failed', `queue "${queue}" kept receiving messages after it was unbound (something publishes to it directly); stop that and run again`);
}

async function deleteEmptiedHolding(conn: amqp.ChannelModel, p: Planned, prefetch: number, now: number): Promise<void> {
  // Quorum queues support neither if-empty nor if-unused on delete (540, closing the connection). The
  // holding queue is unbound by now and nothing publishes to its name, so "counted empty, then deleted" holds.
  for (let i = 0; i < DELETE_ATTEMPTS; i++) {
    const c = await countOf(conn, p.holding);
    if (c === undefined) return;
    if (c.messages === 0 && c.consumers === 0) {
      const { messageCount } = await onChannel(conn, (ch) => ch.deleteQueue(p.holding));
      if (messageCount > 0) throw new QueueMigrationError('failed', `holding queue "${p.holding}" received ${messageCount} message(s) while it was deleted: something publishes to it directly`);
      return;
    }
    p.restored += await move(conn, p.holding, p.spec.name, prefetch, (m) => restore(m, p, now));
  }
  throw new QueueMigrationError('failed', `holding queue "${p.holding}" kept receiving messages; run again`);
}

interface Copy {
  content: Buffer;
  options: amqp.Options.Publish;
}

/** The publish options that reproduce a consumed message's properties. */
function copyOf(m: amqp.ConsumeMessage): Copy {
  const p = m.properties;
  const options: amqp.Options.Publish = { mandatory: true, headers: retypeDeathHeader({ ...(p.headers ?? {}) }) };
  if (p.contentType !== undefined) options.contentType = p.contentType;
  if (p.contentEncoding !== undefined) options.contentEncoding = p.contentEncoding;
  if (p.deliveryMode !== undefined) options.deliveryMode = p.deliveryMode;
  if (p.priority !== undefined) options.priority = p.priority;
  if (p.correlationId !== undefined) options.correlationId = p.correlationId;
  if (p.replyTo !== undefined) options.replyTo = p.replyTo;
  if (p.expiration !== undefined) options.expiration = p.expiration;
  if (p.messageId !== undefined) options.messageId = p.messageId;
  if (p.timestamp !== undefined) options.timestamp = p.timestamp;
  if (p.type !== undefined) options.type = p.type;
  if (p.userId !== undefined) options.userId = p.userId;
  if (p.appId !== undefined) options.appId = p.appId;
  return { content: m.content, options };
}

/** amqplib reads the broker's 64-bit `x-death` counts as plain numbers; they go back as longs, as RabbitMQ wrote them. */
function retypeDeathHeader(headers: Record<string, unknown>): Record<string, unknown> {
  const deaths = headers['x-death'];
  if (Array.isArray(deaths)) {
    headers['x-death'] = deaths.map((d: unknown) =>
      d && typeof d === 'object' && typeof (d as Record<string, unknown>).count === 'number' ? { ...(d as object), count: { '!': 'long', value: (d as Record<string, unknown>).count } } : d,
    );
  }
  return headers;
}

/** Into the holding queue: a per-message expiration is kept in a header (it would expire there with nowhere to go). */
function park(m: amqp.ConsumeMessage): Copy {
  const c = copyOf(m);
  if (c.options.expiration !== undefined) {
    c.options.headers![PARKED_EXPIRATION_HEADER] = String(c.options.expiration);
    delete c.options.expiration;
  }
  return c;
}

/** Back into the quorum queue: the parked expiration restored; a retry copy gets what is left of its delay. */
function restore(m: amqp.ConsumeMessage, p: Planned, now: number): Copy {
  const c = copyOf(m);
  const headers = c.options.headers!;
  const parked = headers[PARKED_EXPIRATION_HEADER];
  delete headers[PARKED_EXPIRATION_HEADER];
  let expiration = parked !== undefined && /^\d+$/.test(String(parked)) ? Number(parked) : undefined;
  if (p.role === 'retry' && p.spec.messageTtl !== undefined) {
    const failedAt = Date.parse(String(headers[RETRY_FAILURE_HEADER] ?? ''));
    if (Number.isFinite(failedAt)) {
      const left = Math.max(0, Math.min(p.spec.messageTtl, p.spec.messageTtl - (now - failedAt)));
      expiration = expiration === undefined ? left : Math.min(expiration, left);
    }
  }
  if (expiration !== undefined) c.options.expiration = String(expiration);
  return c;
}

/**
 * Moves every message of `from` into `to` (default exchange, mandatory, confirmed), acking each source
 * message only after its copy was confirmed. Returns when `from` has no ready message and nothing is in
 * flight; a message that arrives later stays in `from` (callers check with a delete-if-empty).
 */
async function move(conn: amqp.ChannelModel, from: string, to: string, prefetch: number, transform: (m: amqp.ConsumeMessage) => Copy): Promise<number> {
  const source = await conn.createChannel();
  const target = await conn.createConfirmChannel();
  let failure: Error | undefined;
  const fail = (e: Error) => (failure ??= e);
  source.on('error', fail);
  target.on('error', fail);
  source.on('close', () => fail(new Error(`the channel consuming "${from}" closed`)));
  target.on('close', () => fail(new Error(`the channel publishing to "${to}" closed`)));
  // The broker sends basic.return right before the confirm of the same publish: the next confirm is that message's.
  let returned = false;
  target.on('return', () => (returned = true));
  let inFlight = 0;
  let moved = 0;
  let lastActivity = Date.now();
  try {
    await source.prefetch(prefetch);
    const { consumerTag } = await source.consume(
      from,
      (m) => {
        if (!m) return fail(new Error(`the consumer of "${from}" was cancelled by the broker`));
        lastActivity = Date.now();
        if (failure) return; // not acked: requeued when the channel closes
        let copy: Copy;
        try {
          copy = transform(m);
        } catch (e) {
          return fail(e as Error);
        }
        inFlight++;
        try {
          target.publish('', to, copy.content, copy.options, (err) => {
            inFlight--;
            lastActivity = Date.now();
            const wasReturned = returned;
            returned = false;
            if (err || wasReturned) {
              fail(new Error(wasReturned ? `queue "${to}" is missing: a copy was returned unroutable` : `the broker nacked a copy into "${to}"`));
              return; // the original stays in "from" (requeued on close)
            }
            if (failure) return;
            try {
              source.ack(m);
              moved++;
            } catch (e) {
              fail(e as Error);
            }
          });
        } catch (e) {
          inFlight--;
          fail(e as Error);
        }
      },
      { noAck: false },
    );
    for (;;) {
      if (failure) throw failure;
      if (inFlight === 0 && Date.now() - lastActivity >= 20) {
        const ready = await source.checkQueue(from);
        if (ready.messageCount === 0 && inFlight === 0) break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await source.cancel(consumerTag);
    // Deliveries that were on their way when the consumer was cancelled are finished as well.
    const until = Date.now() + 30_000;
    while (inFlight > 0 && !failure && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    if (failure) throw failure;
    return moved;
  } finally {
    source.removeAllListeners('close');
    target.removeAllListeners('close');
    // Closing the source channel requeues every delivery not acked (never one whose copy is unconfirmed).
    await source.close().catch(() => undefined);
    await target.close().catch(() => undefined);
  }
}
