import type { JetStreamClient } from '@nats-io/jetstream';
import type { TransportMessage } from '../../src/internal';
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
