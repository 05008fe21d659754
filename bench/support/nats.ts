import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { TransportMessage } from '../../src/internal';
import { NatsPubAcks } from '../../src/transport/nats/NatsPubAcks';
import { encodeHeaders, publishMsgId } from '../../src/transport/nats/natsWire';

export const NATS_URL = process.env.TMM_NATS_URL ?? 'nats://127.0.0.1:4222';

/**
 * Raw baseline: JetStream publishes of the same messages as the relay sends — same body and the same
 * headers, built per message with NatsTransport's own mapping (`encodeHeaders`, `Nats-Msg-Id` included) —
 * at most `window` awaiting their PubAck at once; resolves when every PubAck is in.
 */
export async function publishWindowedJs(js: JetStreamClient, subject: string, messages: TransportMessage[], window: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < messages.length) {
      const m = messages[next++];
      await js.publish(subject, m.body, { headers: encodeHeaders(m, publishMsgId(m)) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, messages.length) }, worker));
}

/**
 * The same publishes as publishWindowedJs, awaiting each PubAck the way NatsTransport does (NatsPubAcks: one
 * reply subscription for all of them) instead of JetStreamClient.publish: with it the ratio measures what
 * the relay adds (outbox, claims, marks, the transport's bookkeeping), not the publish mechanism.
 */
const ACK_TEXT = new TextDecoder();

export async function publishWindowedPubAcks(nc: NatsConnection, subject: string, messages: TransportMessage[], window: number): Promise<void> {
  const acks = new NatsPubAcks(nc);
  let next = 0;
  const one = (m: TransportMessage) =>
    new Promise<void>((resolve, reject) => {
      acks.publish(subject, m.body, encodeHeaders(m, publishMsgId(m)), 30_000, (outcome) => {
        if (outcome.kind === 'reply' && !ACK_TEXT.decode(outcome.data).includes('"error"')) resolve();
        else reject(new Error(`raw publish failed: ${outcome.kind}`));
      });
    });
  const worker = async () => {
    while (next < messages.length) await one(messages[next++]);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(window, messages.length) }, worker));
  } finally {
    acks.close();
  }
}
