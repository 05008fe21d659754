import type * as amqp from 'amqplib';
import { PublishError } from '../../errors';
import type { Logger } from '../../logging/Logger';
import type { TransportMessage } from '../Transport';
import { errorText, isClosedChannelError, missingExchange, replyCode } from './amqpErrors';
import { type AmqpWireOptions, amqpPublishOptions } from './amqpProperties';

/** Thrown by send() when the channel was already closed, i.e. nothing was written: retrying is safe. */
export class ChannelGoneSignal extends Error {
  constructor() {
    super('publish channel is closed');
  }
}

/** A publish awaiting its confirm. One plain object per message: no closure, no timer of its own. */
interface PendingPublish {
  readonly message: TransportMessage;
  /** Epoch ms after which it fails with TMM_PUBLISH_TIMEOUT. */
  readonly deadline: number;
  /** Set by a basic.return; the broker sends it before the ack of the same message. */
  returned?: string;
  settled: boolean;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  /** Called once when it settles, before the promise settles (the transport frees its in-flight slot). */
  readonly onSettled: (() => void) | undefined;
}

export interface AmqpPublishChannelOptions {
  confirmTimeoutMs: number;
  logger: Logger;
  /** app_id default and the CloudEvents binding (amqpProperties.ts). */
  wire: AmqpWireOptions;
  /** Called when the broker closed the channel because an exchange does not exist (404). */
  onMissingExchange(exchange: string): void;
}

/**
 * One confirm channel and the publishes awaiting its confirms. Every publish settles exactly once: on its
 * ack (or the return that precedes it), its nack, its confirm timeout, or the channel closing.
 * Returns are matched to publishes by messageId, exchange and routing key (the earliest unconfirmed one
 * wins), because AMQP gives a return no delivery tag.
 *
 * Confirm timeouts share one timer: every publish has the same timeout, so the oldest pending publish
 * always has the earliest deadline, and the timer is armed for it alone (a per-message timer cost about
 * as much CPU as the rest of a publish).
 */
export class AmqpPublishChannel {
  private open = true;
  private closeError: unknown;
  private writable = true;
  private drainWaiters: Array<() => void> = [];
  /** Unconfirmed publishes in the order they were sent, hence also in the order of their deadlines. */
  private readonly pending = new Set<PendingPublish>();
  private deadlineTimer: NodeJS.Timeout | undefined;

  static async open(model: amqp.ChannelModel, options: AmqpPublishChannelOptions): Promise<AmqpPublishChannel> {
    const channel = await model.createConfirmChannel();
    return new AmqpPublishChannel(channel, model, options);
  }

  private constructor(
    private readonly channel: amqp.ConfirmChannel,
    /** The connection this channel lives on; a channel of an older connection is never reused. */
    readonly model: amqp.ChannelModel,
    private readonly options: AmqpPublishChannelOptions,
  ) {
    // amqplib emits 'error' (with the reply code) before 'close' when the broker closes the channel;
    // without a listener the error would be thrown inside amqplib and take the connection down.
    channel.on('error', (err: Error) => {
      this.closeError = err;
      const exchange = replyCode(err) === 404 ? missingExchange(err) : undefined;
      if (exchange !== undefined) options.onMissingExchange(exchange);
      options.logger.warn('amqp publish channel closed by the broker; a new one is opened for the next publish', {
        error: errorText(err),
      });
    });
    channel.on('close', () => this.onClose());
    channel.on('return', (msg: amqp.Message) => this.onReturn(msg));
    channel.on('drain', () => {
      this.writable = true;
      this.releaseDrainWaiters();
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  get isWritable(): boolean {
    return this.writable;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Resolves once the channel's write buffer drained (after a publish returned false) or the channel
   * closed; rejects with onTimeout() at the deadline.
   */
  whenWritable(deadline: number, onTimeout: () => Error): Promise<void> {
    if (this.writable || !this.open) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((w) => w !== done);
        reject(onTimeout());
      }, Math.max(0, deadline - Date.now()));
      this.drainWaiters.push(done);
    });
  }

  /**
   * Publishes persistent and mandatory; resolves on the broker's ack. Throws ChannelGoneSignal when the
   * channel is already closed (nothing was sent), otherwise settles with a PublishError. `onSettled` is
   * called once, just before the returned promise settles (whichever way).
   */
  send(message: TransportMessage, onSettled?: () => void): Promise<void> {
    if (!this.open) return Promise.reject(new ChannelGoneSignal());
    return new Promise<void>((resolve, reject) => {
      const p: PendingPublish = { message, deadline: Date.now() + this.options.confirmTimeoutMs, settled: false, resolve, reject, onSettled };
      this.pending.add(p);
      if (this.deadlineTimer === undefined) this.armDeadlineTimer();
      try {
        const ok = this.channel.publish(
          message.exchange,
          message.routingKey,
          message.body,
          amqpPublishOptions(message, this.options.wire),
          (err: unknown) => this.onConfirm(p, err),
        );
        if (!ok) this.writable = false;
      } catch (err) {
        if (isClosedChannelError(err)) {
          this.settle(p, new ChannelGoneSignal());
        } else {
          // amqplib encodes the frame synchronously: a throw here is about this message (headers over the
          // 64 KiB field-table buffer, a value it cannot encode) and will happen again on every attempt.
          this.settle(p, new PublishError('TMM_PUBLISH_INVALID', `message ${message.id} cannot be encoded for AMQP: ${errorText(err)}`, { cause: err }));
        }
      }
    });
  }

  private settle(p: PendingPublish, err?: Error): void {
    if (p.settled) return;
    p.settled = true;
    this.pending.delete(p);
    if (this.pending.size === 0) this.clearDeadlineTimer();
    p.onSettled?.();
    if (err) p.reject(err);
    else p.resolve();
  }

  /** Arms the timer for the oldest pending publish (the earliest deadline); none when nothing is pending. */
  private armDeadlineTimer(): void {
    const oldest = this.pending.values().next();
    if (oldest.done) return;
    this.deadlineTimer = setTimeout(this.onDeadline, Math.max(0, oldest.value.deadline - Date.now()));
  }

  private clearDeadlineTimer(): void {
    if (this.deadlineTimer === undefined) return;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }

  /** Fails every publish whose deadline has passed, then re-arms for the next one. */
  private readonly onDeadline = (): void => {
    this.deadlineTimer = undefined;
    const now = Date.now();
    for (const p of this.pending) {
      if (p.deadline > now) break;
      const m = p.message;
      this.settle(
        p,
        new PublishError(
          'TMM_PUBLISH_TIMEOUT',
          `message ${m.id} to exchange "${m.exchange}" was not confirmed by the broker within ${this.options.confirmTimeoutMs}ms (it may still be delivered)`,
        ),
      );
    }
    if (this.deadlineTimer === undefined) this.armDeadlineTimer();
  };

  /** Settles every unconfirmed publish with the given error (close() uses TMM_PUBLISH_CLOSED). */
  failAll(error: (message: TransportMessage) => Error): void {
    for (const p of [...this.pending]) this.settle(p, error(p.message));
  }

  /** Closes the channel, waiting at most timeoutMs for the broker's close-ok. Never throws. */
  async close(timeoutMs: number): Promise<void> {
    if (!this.open) return;
    this.open = false;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.channel.close().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private onConfirm(p: PendingPublish, err: unknown): void {
    if (p.settled) return;
    const m = p.message;
    if (err === null || err === undefined) {
      if (p.returned !== undefined) {
        this.settle(
          p,
          new PublishError(
            'TMM_PUBLISH_UNROUTABLE',
            `message ${m.id} to exchange "${m.exchange}" with routing key "${m.routingKey}" was not routed to any queue (${p.returned})`,
          ),
        );
      } else {
        this.settle(p);
      }
    } else if (/nack/i.test(errorText(err))) {
      this.settle(p, new PublishError('TMM_PUBLISH_NACKED', `message ${m.id} to exchange "${m.exchange}" was nacked by the broker`, { cause: err }));
    } else {
      this.settle(p, this.lostError(m));
    }
  }

  /** Why an unconfirmed publish failed when the channel closed under it. */
  private lostError(m: TransportMessage): PublishError {
    const cause = this.closeError;
    if (cause !== undefined && replyCode(cause) === 404 && missingExchange(cause) === m.exchange) {
      return new PublishError(
        'TMM_PUBLISH_UNROUTABLE',
        `message ${m.id} was not published: exchange "${m.exchange}" does not exist (${errorText(cause)})`,
        { cause },
      );
    }
    if (cause !== undefined) {
      return new PublishError(
        'TMM_PUBLISH_CONNECTION_LOST',
        `message ${m.id} to exchange "${m.exchange}" was not confirmed: the broker closed the publish channel (${errorText(cause)}); it may still be delivered`,
        { cause },
      );
    }
    return new PublishError(
      'TMM_PUBLISH_CONNECTION_LOST',
      `message ${m.id} to exchange "${m.exchange}" was not confirmed: the connection to the broker was lost; it may still be delivered`,
    );
  }

  private onClose(): void {
    this.open = false;
    this.releaseDrainWaiters();
    // amqplib has already called back every unconfirmed publish with 'channel closed'; this catches any
    // publish it did not know about, so nothing waits for its timeout on a dead channel.
    for (const p of [...this.pending]) this.settle(p, this.lostError(p.message));
    this.clearDeadlineTimer();
  }

  private onReturn(msg: amqp.Message): void {
    const id: unknown = msg.properties.messageId;
    // Returns are rare (a misrouted message): a scan of the unconfirmed publishes, oldest first, is cheaper
    // overall than keeping an index by message id for every publish.
    let p: PendingPublish | undefined;
    for (const c of this.pending) {
      if (c.returned === undefined && c.message.id === id && c.message.exchange === msg.fields.exchange && c.message.routingKey === msg.fields.routingKey) {
        p = c;
        break;
      }
    }
    const fields = msg.fields as amqp.MessageFields & { replyCode?: number; replyText?: string };
    if (p) p.returned = `${fields.replyCode ?? ''} ${fields.replyText ?? 'returned'}`.trim();
    else this.options.logger.debug('amqp return for a message no longer awaiting its confirm', { messageId: id });
  }

  private releaseDrainWaiters(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }
}
