import { DeliverPolicy, DiscardPolicy, type JetStreamClient, type JetStreamManager, RetentionPolicy, StorageType, type ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from '../../logging/Logger';
import { type ExchangeSpec, topicMatches } from '../Transport';
import type { NatsNames, QueueIdentity } from './natsWire';

interface BindingRecord {
  exchange: string;
  routingKey: string;
  queue: string;
}

interface QueueRecord {
  name: string;
  identity: QueueIdentity;
}

type Entry = { kind: 'binding'; value: BindingRecord } | { kind: 'exchange'; value: ExchangeSpec } | { kind: 'queue'; value: QueueRecord };

/**
 * The AMQP routing model of tmm's topology, kept on the NATS server in one stream (`<P>_ROUTES`, one
 * message per exchange, queue and binding, the latest per subject) and mirrored in every transport by an
 * ordered consumer that follows it. JetStream has no exchanges and no bindings, and a stream's subjects may
 * not overlap another's; so each queue is its own stream and the publisher routes: a message published to
 * an exchange is stored in the stream of every queue whose binding matches (topic rules as on RabbitMQ).
 *
 * A publish that finds no route first catches up with the stream (so a binding declared by another
 * process a moment ago is seen), then fails as unroutable.
 */
export class NatsRouteTable {
  private readonly exchanges = new Map<string, ExchangeSpec>();
  private readonly queues = new Map<string, QueueRecord>();
  private readonly bindings = new Map<string, BindingRecord>();
  /** route() results by exchange, then routing key; emptied by every topology change (apply()). */
  private readonly routes = new Map<string, Map<string, readonly string[]>>();
  private routeCount = 0;
  private seen = 0;
  private waiters: Array<{ seq: number; resolve: () => void }> = [];
  private messages: ConsumerMessages | undefined;
  private stopped = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly names: NatsNames,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await ensureStream(this.jsm, {
      name: this.names.routesStream,
      subjects: [`${this.names.routesSubject}.>`],
      description: 'tmm topology: exchanges, queues and bindings (latest per subject)',
    });
    const consumer = await this.js.consumers.get(this.names.routesStream, {
      filter_subjects: `${this.names.routesSubject}.>`,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    this.messages = await consumer.consume();
    void (async () => {
      try {
        for await (const m of this.messages!) {
          this.apply(m.subject, m.data);
          this.seen = Math.max(this.seen, m.seq);
          this.wake();
        }
      } catch (e) {
        if (!this.stopped) this.logger.warn('nats route table stopped following the topology', { error: (e as Error).message });
      }
    })();
    await this.sync(Date.now() + 10_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.waiters.splice(0)) w.resolve();
    try {
      await this.messages?.close();
    } catch {
      // closing anyway
    }
  }

  /** Waits until every topology change stored before now has been applied here (or the deadline passed). */
  async sync(deadline: number): Promise<void> {
    const info = await this.jsm.streams.info(this.names.routesStream);
    const target = info.state.last_seq;
    if (this.seen >= target || this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push({ seq: target, resolve: done });
    });
  }

  exchange(name: string): ExchangeSpec | undefined {
    return this.exchanges.get(name);
  }

  queue(name: string): QueueRecord | undefined {
    return this.queues.get(name);
  }

  hasBinding(b: BindingRecord): boolean {
    return this.bindings.has(this.names.bindingSubject(b.exchange, b.routingKey, b.queue));
  }

  async putExchange(spec: ExchangeSpec): Promise<void> {
    await this.put(this.names.exchangeSubject(spec.name), { kind: 'exchange', value: { name: spec.name, type: spec.type ?? 'topic' } });
  }

  async putQueue(record: QueueRecord): Promise<void> {
    await this.put(this.names.queueSpecSubject(record.name), { kind: 'queue', value: record });
  }

  async putBinding(b: BindingRecord): Promise<void> {
    await this.put(this.names.bindingSubject(b.exchange, b.routingKey, b.queue), { kind: 'binding', value: b });
  }

  /** Forgets a queue and its bindings, or an exchange (for remove()). */
  async removeQueue(name: string): Promise<void> {
    for (const [subject, b] of [...this.bindings]) if (b.queue === name) await this.tombstone(subject);
    await this.tombstone(this.names.queueSpecSubject(name));
  }

  async removeExchange(name: string): Promise<void> {
    for (const [subject, b] of [...this.bindings]) if (b.exchange === name) await this.tombstone(subject);
    await this.tombstone(this.names.exchangeSubject(name));
  }

  /**
   * The queues a message published to `exchange` with `routingKey` goes to. `''` is the default exchange.
   * Cached per exchange and routing key until the topology changes: the table holds every binding on the
   * server under this prefix, and the relay asks once per message.
   */
  route(exchange: string, routingKey: string): readonly string[] {
    let byKey = this.routes.get(exchange);
    let found = byKey?.get(routingKey);
    if (found === undefined) {
      found = this.computeRoute(exchange, routingKey);
      if (++this.routeCount > 10_000) {
        this.routes.clear();
        this.routeCount = 1;
        byKey = undefined;
      }
      if (!byKey) this.routes.set(exchange, (byKey = new Map()));
      byKey.set(routingKey, found);
    }
    return found;
  }

  private computeRoute(exchange: string, routingKey: string): string[] {
    if (exchange === '') return this.queues.has(routingKey) ? [routingKey] : [];
    const ex = this.exchanges.get(exchange);
    if (!ex) return [];
    const type = ex.type ?? 'topic';
    const out = new Set<string>();
    for (const b of this.bindings.values()) {
      if (b.exchange !== exchange || !this.queues.has(b.queue)) continue;
      if (type === 'fanout' || (type === 'direct' ? b.routingKey === routingKey : topicMatches(b.routingKey, routingKey))) out.add(b.queue);
    }
    return [...out];
  }

  private async put(subject: string, entry: Entry): Promise<void> {
    const data = new TextEncoder().encode(JSON.stringify(entry));
    await this.js.publish(subject, data);
    this.apply(subject, data);
  }

  private async tombstone(subject: string): Promise<void> {
    const data = new TextEncoder().encode(JSON.stringify({ kind: 'deleted' }));
    await this.js.publish(subject, data);
    this.apply(subject, data);
  }

  private apply(subject: string, data: Uint8Array): void {
    let entry: Entry | { kind: 'deleted' };
    try {
      entry = JSON.parse(new TextDecoder().decode(data)) as Entry | { kind: 'deleted' };
    } catch {
      this.logger.warn('nats route table: unreadable topology entry ignored', { subject });
      return;
    }
    this.routes.clear();
    this.routeCount = 0;
    const sub = subject.slice(this.names.routesSubject.length + 1);
    const kind = sub.slice(0, 1);
    if (entry.kind === 'deleted') {
      if (kind === 'b') this.bindings.delete(subject);
      else if (kind === 'x') for (const [k, v] of this.exchanges) if (this.names.exchangeSubject(k) === subject) this.exchanges.delete(v.name);
      if (kind === 'q') for (const k of this.queues.keys()) if (this.names.queueSpecSubject(k) === subject) this.queues.delete(k);
      return;
    }
    if (entry.kind === 'binding') {
      this.bindings.set(subject, entry.value);
      if (!this.exchanges.has(entry.value.exchange)) this.exchanges.set(entry.value.exchange, { name: entry.value.exchange, type: 'topic' });
    } else if (entry.kind === 'exchange') this.exchanges.set(entry.value.name, entry.value);
    else if (entry.kind === 'queue') this.queues.set(entry.value.name, entry.value);
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.seq <= this.seen);
    this.waiters = this.waiters.filter((w) => w.seq > this.seen);
    for (const w of ready) w.resolve();
  }
}

/** Creates a tmm bookkeeping stream (latest message per subject) unless it exists. */
export async function ensureStream(jsm: JetStreamManager, cfg: { name: string; subjects: string[]; description: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    return;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  try {
    await jsm.streams.add({
      ...cfg,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.Old,
      num_replicas: 1,
    });
  } catch (e) {
    // Another process created it in the meantime.
    await jsm.streams.info(cfg.name).catch(() => {
      throw e;
    });
  }
}

export function isNotFound(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  const name = (e as Error)?.name;
  return code === 10059 || code === 10014 || name === 'StreamNotFoundError' || name === 'ConsumerNotFoundError' || /not found/i.test((e as Error)?.message ?? '');
}
