/**
 * Raw amqplib for the benchmarks' baselines and checks. (The boundary rule "amqplib only under
 * src/transport/amqp/" is about the library; a baseline has to talk to the broker without tmm.)
 */
import * as amqp from 'amqplib';
import type { TransportMessage } from '../../src/internal';
import { amqpPublishOptions } from '../../src/transport/amqp/amqpProperties';

export const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface RawMessage {
  exchange: string;
  routingKey: string;
  body: Buffer;
  options: amqp.Options.Publish;
}

/**
 * What AmqpTransport puts on the wire for a message (persistent, mandatory, type, app_id, correlation_id, the
 * ms timestamp header…): its own property mapping, so the baseline sends exactly the bytes the relay sends.
 * `appId` is the transport's (its connectionName unless configured).
 */
export function toRawMessage(m: TransportMessage, appId = 'tmm'): RawMessage {
  return { exchange: m.exchange, routingKey: m.routingKey, body: m.body, options: amqpPublishOptions(m, { appId }) };
}

/**
 * Publishes `messages` on a confirm channel with at most `window` awaiting their confirm (and waiting for
 * 'drain' when the socket buffer is full, as AmqpTransport does); resolves once every one is acked.
 */
export function publishWindowed(channel: amqp.ConfirmChannel, messages: RawMessage[], window: number): Promise<void> {
  if (messages.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let next = 0;
    let inFlight = 0;
    let confirmed = 0;
    let writable = true;
    let failed = false;
    const onConfirm = (err: unknown) => {
      if (failed) return;
      if (err) {
        failed = true;
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      inFlight--;
      if (++confirmed === messages.length) resolve();
      else pump();
    };
    const pump = () => {
      while (writable && inFlight < window && next < messages.length) {
        const m = messages[next++];
        inFlight++;
        if (!channel.publish(m.exchange, m.routingKey, m.body, m.options, onConfirm)) {
          writable = false;
          channel.once('drain', () => {
            writable = true;
            pump();
          });
        }
      }
    };
    pump();
  });
}

/** Messages in `queue` now; waits (bounded) until it reaches `expected`, since a count can trail the last confirm. */
export async function queueDepth(channel: amqp.Channel, queue: string, expected: number, waitMs = 3000): Promise<number> {
  const end = Date.now() + waitMs;
  for (;;) {
    const { messageCount } = await channel.checkQueue(queue);
    if (messageCount >= expected || Date.now() > end) return messageCount;
    await new Promise((r) => setTimeout(r, 50));
  }
}
