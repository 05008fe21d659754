import { randomUUID } from 'node:crypto';
import { MemoryTransport } from '../../src/transport/memory/MemoryTransport';
import type { Delivery, TransportMessage } from '../../src/transport/Transport';

const message = (exchange: string, routingKey: string): TransportMessage => ({
  id: randomUUID(),
  exchange,
  routingKey,
  body: Buffer.from('{}'),
  headers: {},
  contentType: 'application/json',
  timestamp: Date.now(),
});

/** The transport keeps the queues a route reaches; every change of the topology must show in the next publish. */
describe('MemoryTransport routes after topology changes', () => {
  it('a binding added to an existing queue by a later declare routes the next publish to that key', async () => {
    const t = new MemoryTransport();
    await t.declare({ exchanges: [{ name: 'ex' }], queues: [{ name: 'q', bindings: [{ exchange: 'ex', routingKey: 'a' }] }] });
    const got: Delivery[] = [];
    await t.subscribe({ queue: { name: 'q' }, prefetch: 10 }, (d) => (got.push(d), d.ack()));
    await t.publish(message('ex', 'a'));
    await expect(t.publish(message('ex', 'b'))).rejects.toMatchObject({ code: 'TMM_PUBLISH_UNROUTABLE' });
    await t.declare({ queues: [{ name: 'q', bindings: [{ exchange: 'ex', routingKey: 'b' }] }] });
    await t.publish(message('ex', 'b'));
    await new Promise((r) => setImmediate(r));
    expect(got.map((d) => d.message.routingKey)).toEqual(['a', 'b']);
    await t.close();
  });

  it('a second queue bound to a key gets the messages published after its declare, the first keeps getting them', async () => {
    const t = new MemoryTransport();
    await t.declare({ exchanges: [{ name: 'ex' }], queues: [{ name: 'q1', bindings: [{ exchange: 'ex', routingKey: 'k.#' }] }] });
    const got: string[] = [];
    await t.subscribe({ queue: { name: 'q1' }, prefetch: 10 }, (d) => (got.push(`q1:${d.message.routingKey}`), d.ack()));
    await t.publish(message('ex', 'k.x'));
    await t.subscribe({ queue: { name: 'q2', bindings: [{ exchange: 'ex', routingKey: 'k.*' }] }, prefetch: 10 }, (d) => (got.push(`q2:${d.message.routingKey}`), d.ack()));
    await t.publish(message('ex', 'k.x'));
    await new Promise((r) => setImmediate(r));
    expect(got.sort()).toEqual(['q1:k.x', 'q1:k.x', 'q2:k.x']);
    await t.close();
  });
});
