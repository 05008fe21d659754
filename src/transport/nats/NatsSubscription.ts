import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Logger } from '../../logging/Logger';
import type { Delivery, DeliveryHandler, QueueSpec, Subscription, TransportMessage } from '../Transport';
import type { NatsLease } from './NatsLease';
import { decodeMessage } from './natsWire';

/** What a subscription needs from its transport. */
export interface NatsSubscriptionHost {
  readonly logger: Logger;
  readonly ackWaitMs: number;
  /** The queue's durable pull consumer on the current connection. */
  consumer(queue: string): Promise<Consumer>;
  /**
   * Makes the server forget the queue's pull requests nobody listens to any more (a consumer-info request
   * prunes them); resolves when done, or after a bounded wait when the server does not answer.
   */
  pruneWaitingPulls(queue: string): Promise<void>;
  /** How many deliveries of the queue's consumer wait for an ack (the server's `num_ack_pending`). */
  ackPending(queue: string): Promise<number>;
  /** Re-routes a message to the queue's dead-letter exchange; rejects when that publish failed. */
  deadLetter(spec: QueueSpec, m: JsMsg, message: TransportMessage, reason: 'rejected' | 'expired'): Promise<void>;
  forget(sub: NatsSubscription): void;
}

/** How long one pull request waits on the server for messages before the next is sent. */
const PULL_EXPIRES_MS = 5_000;

/** Stored time of a JetStream message in epoch ms. */
export function storedAt(m: JsMsg): number {
  return Number(m.info.timestampNanos) / 1e6;
}

/**
 * One subscription on a queue's durable pull consumer. Prefetch is enforced here, per subscription as on
 * RabbitMQ: pull requests never ask for more than `prefetch` minus what is unsettled or already asked for.
 * Deliveries in hand are kept alive on the server (`working()` every ackWait/3), so a slow handler is not
 * redelivered elsewhere while it runs; a process that dies leaves them to be redelivered after ackWait.
 * A message of a queue with a TTL that is older than the TTL when it arrives is dead-lettered instead of
 * handed out. Single-active-consumer queues pull only while holding the queue's lease, and a cancelled
 * subscription gives the lease up only once every delivery it handed out is settled (so the next holder
 * cannot start on a later message while one is still being handled here).
 *
 * cancel() stops the pulls and then has the server prune them before anything is given back: on NATS
 * servers before 2.10.14 / 2.11 a nak that finds only pull requests without interest makes the server drop
 * the nacked message until ackWait and deliver the last new message a second time (nats-server#5305,
 * #5338). Messages that reach a cancelled subscription are held and given back after that prune.
 */
export class NatsSubscription implements Subscription {
  private active = true;
  /** Set by shutdown(): the connection is going away and settles become no-ops (the messages were nak'ed). */
  private dead = false;
  private readonly unsettled = new Set<JsMsg>();
  private requested = 0;
  private readonly fetches = new Set<ConsumerMessages>();
  private wakeUp: (() => void) | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private leaseReleased: Promise<void> | undefined;
  /** Set once cancel() has had the server prune this subscription's pull requests: give-backs are safe. */
  private pruned = false;
  /** Messages that reached the subscription after cancel() began, given back once pruned. */
  private readonly late: JsMsg[] = [];

  constructor(
    private readonly host: NatsSubscriptionHost,
    readonly spec: QueueSpec,
    private readonly prefetch: number,
    private readonly handler: DeliveryHandler,
    private readonly lease: NatsLease | undefined,
  ) {}

  start(): void {
    this.keepAlive = setInterval(() => {
      for (const m of this.unsettled) {
        try {
          m.working();
        } catch {
          // connection down: the server keeps the delivery pending until ackWait
        }
      }
    }, Math.max(250, Math.floor(this.host.ackWaitMs / 3)));
    this.keepAlive.unref();
    if (this.lease) {
      const lease = this.lease;
      this.leaseTimer = setInterval(() => {
        if (lease.held) void lease.acquireOrRenew().catch(() => undefined);
      }, Math.max(100, Math.floor(this.leaseMsThird())));
      this.leaseTimer.unref();
    }
    this.loopDone = this.loop();
  }

  /**
   * After taking over a lease that ran out: true once nothing of the previous holder can still come back
   * after a later message — the consumer has no delivery waiting for an ack, or the previous lease ran out
   * more than ackWait ago (by then what it held is due for redelivery, which JetStream hands out before new
   * messages). Until then a new holder would overtake the message the dead one was handling.
   */
  private async takeoverSafe(previousUntil: number): Promise<boolean> {
    const ackWait = this.host.ackWaitMs;
    if (Date.now() >= previousUntil + ackWait + Math.max(250, ackWait / 10)) return true;
    return (await this.host.ackPending(this.spec.name).catch(() => -1)) === 0;
  }

  private leaseMsThird(): number {
    return (this.lease?.leaseMs ?? 900) / 3;
  }

  async cancel(): Promise<void> {
    if (!this.active) return;
    this.active = false;
    this.stopFetches();
    this.wake();
    await this.loopDone;
    await this.host.pruneWaitingPulls(this.spec.name).catch(() => undefined);
    this.pruned = true;
    for (const m of this.late.splice(0)) tryDo(() => m.nak());
    this.host.forget(this);
    // A single-active-consumer queue stays ours until what we hold is settled: the next holder must not
    // start on later messages while one of ours is still being handled (it would overtake it).
    if (this.unsettled.size === 0) {
      clearInterval(this.keepAlive);
      await this.releaseLease();
    }
  }

  /** Gives up the queue's lease (once); renewing it stops. */
  private releaseLease(): Promise<void> {
    clearInterval(this.leaseTimer);
    this.leaseReleased ??= this.lease?.release().catch(() => undefined) ?? Promise.resolve();
    return this.leaseReleased;
  }

  /** Transport close: stop, and give every unsettled delivery back at once (as a closed AMQP channel does). */
  async shutdown(): Promise<void> {
    await this.cancel();
    this.dead = true;
    clearInterval(this.keepAlive);
    for (const m of this.unsettled) {
      try {
        m.nak();
      } catch {
        // redelivered after ackWait instead
      }
    }
    this.unsettled.clear();
    await this.releaseLease();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.active) {
      if (this.lease && !this.lease.held) {
        const got = await this.lease.acquireOrRenew().catch(() => false);
        if (!got) {
          await this.waitWake(Math.min(500, this.leaseMsThird()));
          continue;
        }
      }
      if (this.lease?.takeover) {
        if (!(await this.takeoverSafe(this.lease.takeover.previousUntil))) {
          await this.waitWake(250);
          continue;
        }
        this.lease.takeover = undefined;
      }
      const free = this.prefetch - this.unsettled.size - this.requested;
      const threshold = this.requested === 0 ? 1 : Math.max(1, Math.ceil(this.prefetch / 4));
      if (free < threshold) {
        await this.waitWake(1_000);
        continue;
      }
      try {
        const consumer = await this.host.consumer(this.spec.name);
        if (!this.active) break;
        const batch = await consumer.fetch({ max_messages: free, expires: PULL_EXPIRES_MS });
        failures = 0;
        this.requested += free;
        this.fetches.add(batch);
        void this.drain(batch, free);
        // cancel() began while this pull was being sent: stop it as well, so that what it brings is held.
        if (!this.active) tryDo(() => batch.stop());
      } catch (e) {
        failures++;
        this.host.logger.warn('nats subscription could not pull; retrying', { queue: this.spec.name, error: (e as Error).message });
        await this.waitWake(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private async drain(batch: ConsumerMessages, asked: number): Promise<void> {
    let got = 0;
    try {
      for await (const m of batch) {
        got++;
        this.requested--;
        this.onMessage(m);
      }
    } catch (e) {
      if (this.active) this.host.logger.debug('nats pull ended', { queue: this.spec.name, error: (e as Error).message });
    } finally {
      this.requested -= asked - got;
      this.fetches.delete(batch);
      this.wake();
    }
  }

  private onMessage(m: JsMsg): void {
    if (!this.active) {
      if (this.pruned) tryDo(() => m.nak());
      else this.late.push(m);
      return;
    }
    const message = decodeMessage(m.data, m.headers, storedAt(m));
    const ttl = this.spec.messageTtl;
    if (ttl !== undefined && Date.now() - storedAt(m) >= ttl) {
      this.host
        .deadLetter(this.spec, m, message, 'expired')
        .then(() => m.ack())
        .catch(() => tryDo(() => m.nak(1_000)));
      return;
    }
    this.unsettled.add(m);
    let settled = false;
    const settle = async (fn: () => Promise<void> | void): Promise<void> => {
      if (settled) return;
      settled = true;
      if (this.dead) return;
      this.unsettled.delete(m);
      try {
        await fn();
      } finally {
        if (!this.active && this.unsettled.size === 0) {
          clearInterval(this.keepAlive);
          // Before the prune, cancel() still holds late arrivals back: it releases the lease itself after them.
          if (this.pruned) void this.releaseLease();
        }
        this.wake();
      }
    };
    const delivery: Delivery = {
      message,
      queue: this.spec.name,
      redelivered: m.redelivered,
      ack: () => settle(() => tryDo(() => m.ack())),
      nack: ({ requeue }) =>
        settle(async () => {
          if (requeue) return tryDo(() => m.nak());
          try {
            await this.host.deadLetter(this.spec, m, message, 'rejected');
            tryDo(() => m.ack());
          } catch (e) {
            this.host.logger.error('nats could not dead-letter a rejected message; it goes back to its queue', {
              queue: this.spec.name,
              id: message.id,
              error: (e as Error).message,
            });
            tryDo(() => m.nak(1_000));
          }
        }),
    };
    Promise.resolve()
      .then(() => this.handler(delivery))
      .catch((e: unknown) => {
        this.host.logger.error('delivery handler threw; message requeued (handlers must settle their deliveries)', { queue: this.spec.name, id: message.id, error: e });
        return delivery.nack({ requeue: true });
      });
  }

  private stopFetches(): void {
    for (const f of this.fetches) tryDo(() => f.stop());
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private waitWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const done = (): void => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      timer = setTimeout(done, ms);
      const prev = this.wakeUp;
      this.wakeUp = () => {
        prev?.();
        done();
      };
    });
  }
}

function tryDo(fn: () => void): void {
  try {
    fn();
  } catch {
    // the connection is gone; JetStream redelivers after ackWait
  }
}
