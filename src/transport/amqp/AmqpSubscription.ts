import type * as amqp from 'amqplib';
import type { Logger } from '../../logging/Logger';
import type { Delivery, DeliveryHandler, HeaderValue, Headers, SubscribeOptions, Subscription, TransportMessage } from '../Transport';
import { errorText, isClosedChannelError } from './amqpErrors';
import { fromAmqpMessage } from './amqpProperties';

/** What a subscription needs from its transport. */
export interface AmqpSubscriptionHost {
  readonly logger: Logger;
  /** The live connection if the transport is connected and ready, else undefined. */
  currentConnection(): amqp.ChannelModel | undefined;
  /** Declares the subscription's queue again (after the broker cancelled the consumer, e.g. the queue was deleted). */
  redeclareQueue(subscription: AmqpSubscription): Promise<void>;
  /** First delay before restarting a consumer whose channel the broker closed; doubles per failure up to the max. */
  readonly resubscribeDelayMs: number;
  readonly maxResubscribeDelayMs: number;
  forget(subscription: AmqpSubscription): void;
}

/**
 * A consumer on its own channel (prefetch applies per consumer), with manual acks. It survives its
 * channel: when the connection comes back the transport calls attach() again; when only the channel
 * died it re-attaches itself after a delay. Deliveries keep the channel they arrived on, so a delivery
 * from a dead channel is never acked on its successor: settling it is a no-op and the broker redelivers.
 */
export class AmqpSubscription implements Subscription {
  private channel: amqp.Channel | undefined;
  private consumerTag: string | undefined;
  private attaching: Promise<void> | undefined;
  private cancelled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failedRetries = 0;
  /** Channels we are closing ourselves; their 'close' must not trigger a re-attach. */
  private readonly closingByUs = new WeakSet<amqp.Channel>();
  private readonly unsettled = new Set<AmqpDelivery>();

  constructor(
    private readonly host: AmqpSubscriptionHost,
    readonly options: SubscribeOptions,
    private readonly handler: DeliveryHandler,
  ) {}

  get queue(): string {
    return this.options.queue.name;
  }

  /** Consuming on a live channel now: not cancelled, and the broker acknowledged basic.consume on the current channel. */
  get isActive(): boolean {
    return !this.cancelled && this.channel !== undefined && this.consumerTag !== undefined;
  }

  /** Opens a channel on `model` and starts consuming, unless already consuming or cancelled. */
  attach(model: amqp.ChannelModel): Promise<void> {
    if (this.cancelled || this.channel) return Promise.resolve();
    if (!this.attaching) {
      this.attaching = this.open(model).finally(() => {
        this.attaching = undefined;
      });
    }
    return this.attaching;
  }

  private async open(model: amqp.ChannelModel): Promise<void> {
    const logger = this.host.logger;
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => {
      logger.warn('amqp consumer channel closed by the broker', { queue: this.queue, error: errorText(err) });
    });
    ch.on('close', () => this.onChannelClosed(ch));
    // Set before consuming, so a channel that dies mid-attach is seen by onChannelClosed.
    this.channel = ch;
    try {
      await ch.prefetch(this.options.prefetch, false);
      const { consumerTag } = await ch.consume(this.queue, (msg) => this.onMessage(ch, msg), { noAck: false });
      if (this.channel === ch) this.consumerTag = consumerTag;
      this.failedRetries = 0;
      logger.debug('amqp consumer started', { queue: this.queue, consumerTag, prefetch: this.options.prefetch });
    } catch (err) {
      if (this.channel === ch) this.channel = undefined;
      await this.closeChannel(ch);
      throw err;
    }
    if (this.cancelled) await this.stop();
  }

  /** attach() after a reconnect; on failure it keeps retrying (queue declared again) with backoff. */
  resume(model: amqp.ChannelModel): Promise<void> {
    return this.attach(model).catch((err: unknown) => {
      this.host.logger.error('amqp consumer could not be resumed after reconnecting; retrying', { queue: this.queue, error: errorText(err) });
      this.scheduleRetry(true);
    });
  }

  /** Stops new deliveries; unsettled ones can still be settled, then the channel is closed. */
  async cancel(): Promise<void> {
    if (this.cancelled) return;
    this.cancelled = true;
    clearTimeout(this.retryTimer);
    this.host.forget(this);
    await this.attaching?.catch(() => undefined);
    await this.stop();
  }

  /** Closes the channel whatever is unsettled (transport close): the broker requeues those deliveries. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.cancelled = true;
    clearTimeout(this.retryTimer);
    await this.attaching?.catch(() => undefined);
    const ch = this.channel;
    this.channel = undefined;
    this.consumerTag = undefined;
    if (ch) await withTimeout(this.closeChannel(ch), timeoutMs);
  }

  private async stop(): Promise<void> {
    const ch = this.channel;
    const tag = this.consumerTag;
    this.consumerTag = undefined;
    if (ch && tag) {
      try {
        await ch.cancel(tag);
      } catch (err) {
        this.host.logger.debug('amqp consumer cancel failed (channel already closed)', { queue: this.queue, error: errorText(err) });
      }
    }
    if (this.unsettled.size === 0) await this.closeCurrent();
  }

  private async closeCurrent(): Promise<void> {
    const ch = this.channel;
    this.channel = undefined;
    if (ch) await this.closeChannel(ch);
  }

  private async closeChannel(ch: amqp.Channel): Promise<void> {
    this.closingByUs.add(ch);
    try {
      await ch.close();
    } catch {
      // already closed
    }
  }

  private onChannelClosed(ch: amqp.Channel): void {
    // Deliveries of this channel can no longer be settled; the broker redelivers them.
    for (const d of [...this.unsettled]) if (d.channel === ch) this.unsettled.delete(d);
    if (this.channel !== ch) return;
    this.channel = undefined;
    this.consumerTag = undefined;
    if (this.cancelled || this.closingByUs.has(ch)) return;
    // If the whole connection went, the transport re-attaches on reconnect; if only this channel was
    // closed (the connection is still there), re-attach here after a pause.
    this.scheduleRetry(false);
  }

  private scheduleRetry(redeclare: boolean): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const model = this.host.currentConnection();
      if (!model || this.cancelled) return;
      const run = redeclare ? this.host.redeclareQueue(this) : Promise.resolve();
      run
        .then(() => this.attach(model))
        .catch((err: unknown) => {
          this.failedRetries++;
          this.host.logger.error('amqp consumer could not be restarted; retrying', { queue: this.queue, error: errorText(err) });
          this.scheduleRetry(true);
        });
    }, Math.min(this.host.resubscribeDelayMs * 2 ** this.failedRetries, this.host.maxResubscribeDelayMs));
    this.retryTimer.unref();
  }

  private onMessage(ch: amqp.Channel, msg: amqp.ConsumeMessage | null): void {
    // This runs inside amqplib's frame handling: anything thrown here would take the connection down.
    try {
      this.dispatch(ch, msg);
    } catch (err) {
      this.host.logger.error('amqp delivery could not be dispatched; it is requeued', { queue: this.queue, error: errorText(err) });
      try {
        if (msg) ch.nack(msg, false, true);
      } catch {
        // channel closed: the broker requeues it anyway
      }
    }
  }

  private dispatch(ch: amqp.Channel, msg: amqp.ConsumeMessage | null): void {
    if (msg === null) {
      // basic.cancel from the broker: the queue was deleted (or its leader moved). Declare and consume again.
      this.host.logger.warn('amqp consumer cancelled by the broker; resubscribing', { queue: this.queue });
      if (this.channel === ch) {
        this.channel = undefined;
        this.consumerTag = undefined;
        if (this.unsettled.size === 0) void this.closeChannel(ch);
      }
      if (!this.cancelled) this.scheduleRetry(true);
      return;
    }
    if (this.cancelled) {
      // Arrived between our basic.cancel and its cancel-ok: give it back untouched.
      try {
        ch.nack(msg, false, true);
      } catch {
        // channel closed: the broker requeues it anyway
      }
      return;
    }
    const delivery = new AmqpDelivery(ch, msg, this.queue, (d) => this.onSettled(d), this.host.logger);
    this.unsettled.add(delivery);
    const onError = (err: unknown) => {
      this.host.logger.error('amqp handler failed; the delivery is nacked with requeue', {
        queue: this.queue,
        messageId: delivery.message.id,
        error: errorText(err),
      });
      if (!delivery.isSettled) void delivery.nack({ requeue: true });
    };
    try {
      Promise.resolve(this.handler(delivery)).catch(onError);
    } catch (err) {
      onError(err);
    }
  }

  private onSettled(d: AmqpDelivery): void {
    this.unsettled.delete(d);
    if (this.cancelled && this.unsettled.size === 0 && !this.consumerTag) void this.closeCurrent();
  }
}

/** A received message bound to the channel it came on. */
export class AmqpDelivery implements Delivery {
  readonly message: TransportMessage;
  readonly redelivered: boolean;
  private settled = false;

  constructor(
    readonly channel: amqp.Channel,
    private readonly raw: amqp.ConsumeMessage,
    readonly queue: string,
    private readonly onSettled: (d: AmqpDelivery) => void,
    private readonly logger: Logger,
  ) {
    this.message = fromAmqpMessage(raw);
    this.redelivered = raw.fields.redelivered;
  }

  get isSettled(): boolean {
    return this.settled;
  }

  ack(): Promise<void> {
    return this.settle('ack', () => this.channel.ack(this.raw));
  }

  nack(options: { requeue: boolean }): Promise<void> {
    return this.settle('nack', () => this.channel.nack(this.raw, false, options.requeue));
  }

  private settle(what: string, send: () => void): Promise<void> {
    if (this.settled) return Promise.resolve();
    this.settled = true;
    try {
      send();
    } catch (err) {
      // The channel died: the broker requeues its deliveries, and a delivery tag is only valid on its own
      // channel, so there is nothing left to do.
      const fields = { queue: this.queue, messageId: this.message.id, error: errorText(err) };
      if (isClosedChannelError(err)) this.logger.debug(`amqp ${what} skipped: the delivery's channel is closed; the broker redelivers it`, fields);
      else this.logger.warn(`amqp ${what} failed; the broker redelivers the message`, fields);
    }
    this.onSettled(this);
    return Promise.resolve();
  }
}

export { fromAmqpMessage };

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
