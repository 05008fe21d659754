import { type Msg, type MsgHdrs, type NatsConnection, type Subscription, createInbox } from '@nats-io/transport-node';

/** How a publish waiting for its PubAck ended: the PubAck's JSON, no stream listening, or no answer in time. */
export type PubAckOutcome = { kind: 'reply'; data: Uint8Array } | { kind: 'no-responders' } | { kind: 'timeout' };

interface Waiting {
  settle(outcome: PubAckOutcome): void;
  deadline: number;
}

/** How often waiting publishes are checked for their timeout (a timeout fires at most this much late). */
const TIMEOUT_CHECK_MS = 50;

/**
 * JetStream publishes awaiting their PubAck on one reply subscription, as nats.go's PublishAsync does: each
 * publish is a core publish with reply subject `<inbox>.<token>`; the PubAck (or the server's
 * no-responders status: no stream on the subject) arrives on the one inbox subscription and is matched by
 * its token; one timer checks every waiting publish's deadline. A request per publish (what
 * JetStreamClient.publish does) costs, per message, the client's request object, a deferred, a timer and
 * an Error built when the request is cleaned up — the relay publishes every message this way, so it is
 * cheaper done here. The client resubscribes the inbox after a reconnect; what waited across a disconnect is
 * failed by NatsTransport (connection lost) and its late reply, if any, is ignored.
 */
export class NatsPubAcks {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly waiting = new Map<string, Waiting>();
  private next = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly nc: NatsConnection) {
    this.prefix = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (err, msg) => this.onReply(err, msg) });
  }

  /**
   * Publishes `body` to `subject` and calls `settle` once, with the outcome, within `timeoutMs` (+ up to
   * TIMEOUT_CHECK_MS). Throws (settling nothing) when the client refuses the publish outright (closed
   * connection, a header value it rejects, over max_payload).
   */
  publish(subject: string, body: Uint8Array, headers: MsgHdrs, timeoutMs: number, settle: (outcome: PubAckOutcome) => void): void {
    const token = (++this.next).toString(36);
    this.nc.publish(subject, body, { reply: this.prefix + token, headers });
    this.waiting.set(token, { settle, deadline: Date.now() + timeoutMs });
    if (!this.timer) {
      this.timer = setInterval(() => this.expire(), TIMEOUT_CHECK_MS);
      this.timer.unref();
    }
  }

  /** Stops the timer and forgets what waits (the connection is closing; NatsTransport failed those publishes). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.waiting.clear();
    try {
      this.sub.unsubscribe();
    } catch {
      // the connection is gone already
    }
  }

  private onReply(err: Error | null, msg: Msg): void {
    if (err || !msg) return; // the subscription itself failed (connection closing): the waiting publishes time out or were failed
    const token = msg.subject.slice(this.prefix.length);
    const w = this.waiting.get(token);
    if (!w) return; // timed out already
    this.waiting.delete(token);
    w.settle(msg.data.length === 0 && msg.headers?.code === 503 ? { kind: 'no-responders' } : { kind: 'reply', data: msg.data });
  }

  private expire(): void {
    const now = Date.now();
    for (const [token, w] of this.waiting) {
      if (w.deadline > now) continue;
      this.waiting.delete(token);
      w.settle({ kind: 'timeout' });
    }
    if (this.waiting.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
