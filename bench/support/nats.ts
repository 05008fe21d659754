import type { JetStreamClient } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { TransportMessage } from '../../src/internal';

export const NATS_URL = process.env.TMM_NATS_URL ?? 'nats://127.0.0.1:4222';

/**
 * Raw baseline: JetStream publishes of the same messages (same body, message id and the same six headers
 * tmm writes), at most `window` awaiting their PubAck at once; resolves when every PubAck is in.
 */
export async function publishWindowedJs(js: JetStreamClient, subject: string, messages: TransportMessage[], window: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < messages.length) {
      const m = messages[next++];
      const h = headers();
      h.set('Nats-Msg-Id', m.id);
      h.set('Tmm-Message-Id', m.id);
      h.set('Tmm-Exchange', m.exchange);
      h.set('Tmm-Routing-Key', m.routingKey);
      h.set('Tmm-Content-Type', m.contentType);
      h.set('Tmm-Timestamp', String(m.timestamp));
      h.set('Tmm-Headers', JSON.stringify(m.headers));
      await js.publish(subject, m.body, { headers: h });
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, messages.length) }, worker));
}
