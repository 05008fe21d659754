/**
 * NatsTransport against real server failures, on a PRIVATE nats-server (test/support/natsServer.ts):
 * the server SIGKILLed and restarted mid-stream (nothing lost, counted against the ids sent and the
 * stream's own message count), and a stalled server (SIGSTOP: publishes fail with a timeout instead of
 * hanging; SIGCONT: publishing resumes).
 */
import { randomUUID } from 'node:crypto';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { PublishError } from '../../src/errors';
import { silentLogger } from '../../src/logging/Logger';
import { NatsTransport } from '../../src/transport/nats';
import type { Delivery, TransportMessage } from '../../src/transport/Transport';
import { PrivateNatsServer } from '../support/natsServer';

jest.setTimeout(90_000);

let server: PrivateNatsServer;
beforeAll(async () => {
  server = await PrivateNatsServer.start();
});
afterAll(async () => {
  await server?.stop();
});

function message(queue: string, seq: number): TransportMessage {
  return { id: randomUUID(), exchange: 'orders', routingKey: 'order.created', body: Buffer.from(JSON.stringify({ seq })), headers: { seq }, contentType: 'application/json', timestamp: Date.now() };
}

async function storedCount(stream: string): Promise<number> {
  const nc = await connect({ servers: server.url });
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

it('loses nothing when the server is killed and restarted mid-stream (publishes retried as the relay does)', async () => {
  const t = new NatsTransport({ servers: server.url, logger: silentLogger, publishTimeoutMs: 2_000, reconnectTimeWaitMs: 100 });
  const queue = `restart-${randomUUID().slice(0, 8)}`;
  try {
    await t.declare({ exchanges: [{ name: 'orders' }], queues: [{ name: queue, bindings: [{ exchange: 'orders', routingKey: 'order.#' }] }] });
    const sent = Array.from({ length: 300 }, (_, i) => message(queue, i));
    const failures: string[] = [];
    let restarted: Promise<void> | undefined;
    for (let i = 0; i < sent.length; i++) {
      if (i === 150) restarted = server.kill().then(() => new Promise((r) => setTimeout(r, 500))).then(() => server.run());
      // The relay's rule: a failed publish stays PENDING and is published again later.
      for (;;) {
        try {
          await t.publish(sent[i]);
          break;
        } catch (e) {
          expect(e).toBeInstanceOf(PublishError);
          failures.push((e as PublishError).code);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    await restarted;
    // The kill happened mid-stream: some publish saw it fail.
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((c) => ['TMM_PUBLISH_CONNECTION_LOST', 'TMM_PUBLISH_TIMEOUT'].includes(c))).toBe(true);
    // Ground truth from a raw client: every message stored once (republished ones deduplicated by Nats-Msg-Id).
    expect(await storedCount(t.queueStream(queue).stream)).toBe(sent.length);

    const got = new Map<string, number>();
    await t.subscribe({ queue: { name: queue, bindings: [{ exchange: 'orders', routingKey: 'order.#' }] }, prefetch: 50 }, async (d: Delivery) => {
      got.set(d.message.id, (got.get(d.message.id) ?? 0) + 1);
      await d.ack();
    });
    const until = Date.now() + 20_000;
    while (got.size < sent.length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(sent.filter((m) => !got.has(m.id))).toHaveLength(0);
  } finally {
    await t.remove({ queues: [{ name: queue }], exchanges: [{ name: 'orders' }] }).catch(() => undefined);
    await t.close();
  }
});

it('fails publishes with TMM_PUBLISH_TIMEOUT while the server is stalled (SIGSTOP) and publishes again after SIGCONT', async () => {
  const t = new NatsTransport({ servers: server.url, logger: silentLogger, publishTimeoutMs: 1_000, reconnectTimeWaitMs: 100, pingIntervalMs: 500, maxPingOut: 2 });
  const queue = `stall-${randomUUID().slice(0, 8)}`;
  try {
    await t.declare({ queues: [{ name: queue }] });
    const before = { ...message(queue, 0), exchange: '', routingKey: queue };
    await t.publish(before);
    await server.pause();
    let resumed = false;
    try {
      const stalled = { ...message(queue, 1), exchange: '', routingKey: queue };
      const started = Date.now();
      const err = await t.publish(stalled).catch((e: unknown) => e);
      const took = Date.now() - started;
      expect(err).toBeInstanceOf(PublishError);
      expect((err as PublishError).code).toMatch(/^TMM_PUBLISH_(TIMEOUT|CONNECTION_LOST)$/);
      // Failed within its deadline (plus scheduling slack), not hung.
      expect(took).toBeLessThan(3_000);
      await new Promise((r) => setTimeout(r, 1_500));
      server.resume();
      resumed = true;
    } finally {
      if (!resumed) server.resume();
    }
    const after = { ...message(queue, 2), exchange: '', routingKey: queue };
    const until = Date.now() + 20_000;
    for (;;) {
      try {
        await t.publish(after);
        break;
      } catch (e) {
        if (Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const ids: string[] = [];
    await t.subscribe({ queue: { name: queue }, prefetch: 10 }, async (d) => {
      ids.push(d.message.id);
      await d.ack();
    });
    const deadline = Date.now() + 10_000;
    while (!ids.includes(after.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(ids).toContain(before.id);
    expect(ids).toContain(after.id);
  } finally {
    server.resume();
    await t.remove({ queues: [{ name: queue }] }).catch(() => undefined);
    await t.close();
  }
});

it('a PubAck that refuses the message is TMM_PUBLISH_NACKED and a stream deleted under the transport is TMM_PUBLISH_UNROUTABLE; a duplicate inside the window is acknowledged once', async () => {
  const t = new NatsTransport({ servers: server.url, logger: silentLogger, publishTimeoutMs: 2_000 });
  const queue = `refused-${randomUUID().slice(0, 8)}`;
  const nc = await connect({ servers: server.url });
  try {
    await t.declare({ exchanges: [{ name: 'orders' }], queues: [{ name: queue, bindings: [{ exchange: 'orders', routingKey: 'order.#' }] }] });
    const { stream } = t.queueStream(queue);
    const jsm = await jetstreamManager(nc);
    const first = message(queue, 1);
    await t.publish(first);
    await t.publish(first); // same Nats-Msg-Id: acknowledged as a duplicate, stored once
    expect(await storedCount(stream)).toBe(1);
    // The server refuses a new message once the stream is full (discard new): a PubAck with an error.
    const info = await jsm.streams.info(stream);
    await jsm.streams.update(stream, { ...info.config, max_msgs: 1, discard: DiscardPolicy.New });
    const refused = await t.publish(message(queue, 2)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ name: 'PublishError', code: 'TMM_PUBLISH_NACKED' });
    expect((refused as Error).message).toMatch(/refused by the server \(.*maximum messages.*err_code \d+\)/i);
    // The stream is deleted behind the transport's back: no responders on its subject.
    await jsm.streams.delete(stream);
    await expect(t.publish(message(queue, 3))).rejects.toMatchObject({ code: 'TMM_PUBLISH_UNROUTABLE' });
  } finally {
    await nc.close();
    await t.remove({ exchanges: [{ name: 'orders' }], queues: [{ name: queue }] }).catch(() => undefined);
    await t.close();
  }
});
