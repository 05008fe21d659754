import { ConfigurationError, PublishError, TransportClosedError } from '../../errors';
import { type Logger, silentLogger } from '../../logging/Logger';
import type { Delivery, DeliveryHandler, Headers, SubscribeOptions, Subscription, Topology, Transport, TransportFeatures, TransportMessage } from '../Transport';
import { type SetRules, setKeyOf, setOfKey, validateSetRules } from './SetRules';

/** Headers of SET routing; stable strings. */
export const SetHeaders = {
  /** The set a message belongs to: chosen once, then kept through retries, dead-lettering and resends. */
  set: 'tmm-set',
  /** On a message that failed over: the set it was meant for. */
  failoverFrom: 'tmm-set-failover-from',
} as const;

export interface SetRoutingOptions {
  /** The sets by name: each a transport (a broker, a vhost, a cluster). */
  sets: Record<string, Transport>;
  rules: SetRules;
  /** Sets this service consumes from (a service in SET A consumes A's queues); default: every set. */
  consumeFrom?: string[];
  /**
   * set → set to publish to when that set's broker cannot be reached (connection lost / timeout). Without
   * an entry a set that is down fails its publishes, so the relay keeps its messages PENDING and retries
   * them with backoff while other sets flow. Each failover is logged and counted.
   */
  failover?: Record<string, string>;
  logger?: Logger;
}

/**
 * Messages per set since start: published (by set actually used), failed publishes, failovers. TMM-ADMIN
 * serves them as `tmm_set_published_total`, `tmm_set_publish_failed_total` and `tmm_set_failed_over_total`.
 */
export interface SetFlowStats {
  published: number;
  failed: number;
  failedOver: number;
}

/**
 * A Transport that routes each message to one of several named transports ("sets") by a key (header or
 * payload field) mapped by the rules; business code only sends. The set is written into the `tmm-set`
 * header on publish; a message that already carries one (a consumer's retry or dead-letter copy, an admin
 * resend of a dead letter) goes back to that set, whatever the rules say now. Deliveries are stamped with
 * the set they came from, so their copies stay in it.
 *
 * A set that was up and whose transport now reports no connection (`isConnected === false`, while it
 * reconnects) fails its publishes at once with TMM_PUBLISH_CONNECTION_LOST (a transient failure: the relay
 * keeps the row PENDING and retries it with backoff, spending no attempt), so a down set never holds the
 * relay's publish window while the other sets flow; `failover` then applies as for any connection loss.
 *
 * declare() declares on every set (the same queues exist in each); subscribe() consumes from the
 * `consumeFrom` sets; close() closes every set's transport. Rules are validated in the constructor: an
 * unknown set, overlapping ranges or a missing center is a ConfigurationError naming the rule.
 */
export class SetRoutingTransport implements Transport {
  readonly features: TransportFeatures;
  readonly stats = new Map<string, SetFlowStats>();
  private readonly names: string[];
  private readonly consumeFrom: string[];
  private readonly logger: Logger;
  /** Sets that have confirmed a publish: one of them whose transport reports no connection is down. */
  private readonly wasUp = new Set<string>();
  private closed = false;

  constructor(private readonly options: SetRoutingOptions) {
    if (!options || typeof options.sets !== 'object' || options.sets === null) throw new ConfigurationError('sets', 'must name at least one set');
    this.names = Object.keys(options.sets);
    if (this.names.length === 0) throw new ConfigurationError('sets.sets', 'must name at least one set');
    validateSetRules(options.rules, this.names);
    for (const s of options.consumeFrom ?? []) if (!options.sets[s]) throw new ConfigurationError('sets.consumeFrom', `unknown set ${JSON.stringify(s)}`);
    for (const [from, to] of Object.entries(options.failover ?? {})) {
      if (!options.sets[from]) throw new ConfigurationError(`sets.failover.${from}`, `unknown set ${JSON.stringify(from)}`);
      if (!options.sets[to] || to === from) throw new ConfigurationError(`sets.failover.${from}`, `must name another known set, got ${JSON.stringify(to)}`);
    }
    this.consumeFrom = options.consumeFrom ?? this.names;
    this.logger = options.logger ?? silentLogger;
    const all = this.names.map((n) => options.sets[n].features);
    this.features = { durable: all.every((f) => f.durable), confirms: all.every((f) => f.confirms) };
    for (const n of this.names) this.stats.set(n, { published: 0, failed: 0, failedOver: 0 });
  }

  /** The configured set names, in configuration order. */
  get setNames(): readonly string[] {
    return this.names;
  }

  /** The set a message goes to: its `tmm-set` header if it has one, else the rules. */
  setOf(message: TransportMessage): string {
    const sticky = message.headers[SetHeaders.set];
    if (typeof sticky === 'string') return sticky;
    return setOfKey(this.options.rules, setKeyOf(this.options.rules, message));
  }

  /** The producer stores the set with the message: it keeps it whatever the rules say later. */
  stampHeaders(message: TransportMessage): Headers {
    return { [SetHeaders.set]: this.setOf(message) };
  }

  async declare(topology: Topology): Promise<void> {
    this.assertOpen('declare');
    for (const n of this.names) await this.options.sets[n].declare(topology);
  }

  async publish(message: TransportMessage): Promise<void> {
    this.assertOpen(`publish ${message.id}`);
    const set = this.setOf(message);
    const target = this.options.sets[set];
    if (!target) {
      throw new PublishError('TMM_PUBLISH_FAILED', `message ${message.id} belongs to set "${set}" (header ${SetHeaders.set}), which is not configured (sets: ${this.names.join(', ')})`);
    }
    const stats = this.stats.get(set)!;
    try {
      if (target.isConnected === false && this.wasUp.has(set)) {
        // Known down (it was up, its transport lost the broker and reconnects in the background): fail now
        // instead of holding a publish slot for the transport's connect timeout, so that a down set's
        // backlog cannot fill the relay's window while other sets flow. The relay keeps the row PENDING.
        throw new PublishError('TMM_PUBLISH_CONNECTION_LOST', `message ${message.id}: set "${set}" is down (its broker connection is lost; reconnecting)`);
      }
      await target.publish({ ...message, headers: { ...message.headers, [SetHeaders.set]: set } });
      this.wasUp.add(set);
      stats.published++;
    } catch (e) {
      stats.failed++;
      const to = this.options.failover?.[set];
      const code = (e as PublishError).code;
      if (!to || (code !== 'TMM_PUBLISH_CONNECTION_LOST' && code !== 'TMM_PUBLISH_TIMEOUT')) throw e;
      this.logger.warn('set unreachable; message failed over', { id: message.id, set, failoverTo: to, error: (e as Error).message });
      await this.options.sets[to].publish({ ...message, headers: { ...message.headers, [SetHeaders.set]: to, [SetHeaders.failoverFrom]: set } });
      stats.failedOver++;
      this.stats.get(to)!.published++;
    }
  }

  async subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription> {
    this.assertOpen(`subscribe ${options.queue.name}`);
    const subs: Subscription[] = [];
    try {
      for (const set of this.consumeFrom) {
        subs.push(
          await this.options.sets[set].subscribe(options, (d) =>
            handler(d.message.headers[SetHeaders.set] === set ? d : withSet(d, set)),
          ),
        );
      }
    } catch (e) {
      await Promise.all(subs.map((s) => s.cancel().catch(() => undefined)));
      throw e;
    }
    return { cancel: async () => void (await Promise.all(subs.map((s) => s.cancel()))) };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.names.map((n) => this.options.sets[n].close()));
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new TransportClosedError(what);
  }
}

/** The delivery with its set in the headers (a message published to the set without tmm-set). */
function withSet(d: Delivery, set: string): Delivery {
  const message = { ...d.message, headers: { ...d.message.headers, [SetHeaders.set]: set } };
  return { message, queue: d.queue, redelivered: d.redelivered, ack: () => d.ack(), nack: (o) => d.nack(o) };
}
