/**
 * SET routing (src/transport/sets) on real brokers: two RabbitMQ virtual hosts as two sets (created and
 * deleted with rabbitmqctl per test), and RabbitMQ + NATS JetStream (a PRIVATE nats-server, so it can be
 * killed) as two sets. Where messages landed is read from the brokers themselves (queue depths).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { ConfigurationError, PublishError } from '../../src/errors';
import { silentLogger } from '../../src/logging/Logger';
import { AmqpTransport } from '../../src/transport/amqp';
import { NatsTransport } from '../../src/transport/nats';
import { SetHeaders, SetRoutingTransport, setOfKey, type SetRules } from '../../src/transport/sets';
import type { Delivery, Topology, TransportMessage } from '../../src/transport/Transport';
import { PrivateNatsServer } from '../support/natsServer';
import { DataSource } from 'typeorm';
import { Tmm } from '../../src/runtime/Tmm';
import { LedgerPosted } from '../support/contracts';

jest.setTimeout(90_000);
const run = promisify(execFile);

async function withVhost(name: string): Promise<string> {
  await run('rabbitmqctl', ['-q', 'add_vhost', name]);
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
  return `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(name)}`;
}

function msg(city: string, over: Partial<TransportMessage> = {}): TransportMessage {
  return { id: randomUUID(), exchange: 'orders', routingKey: 'order.created', body: Buffer.from(JSON.stringify({ city })), headers: { 'x-city': city }, contentType: 'application/json', timestamp: Date.now(), ...over };
}

const topology = (queue: string): Topology => ({ exchanges: [{ name: 'orders' }], queues: [{ name: queue, bindings: [{ exchange: 'orders', routingKey: 'order.#' }] }] });

describe('SET rules are validated at start', () => {
  const sets = () => ({ A: new AmqpTransport({ logger: silentLogger }), B: new AmqpTransport({ logger: silentLogger }) });
  it.each([
    ['an unknown set', { key: { header: 'x-city' }, center: 'A', values: { paris: 'C' } }, /sets\.rules\.values\.paris.*unknown set "C"/],
    ['no center', { key: { header: 'x-city' }, values: { paris: 'A' } }, /sets\.rules\.center.*center set is required/],
    ['overlapping ranges', { key: { field: 'userId' }, center: 'A', ranges: [{ from: 0, to: 100, set: 'A' }, { from: 50, to: 200, set: 'B' }] }, /ranges\.1.*overlaps ranges\.0/],
    ['a zero weight', { key: { field: 'userId' }, center: 'A', hash: { A: 1, B: 0 } }, /hash\.B.*weight must be a number > 0/],
  ])('%s is a ConfigurationError naming the rule', async (_what, rules, message) => {
    const s = sets();
    try {
      let err: unknown;
      try {
        new SetRoutingTransport({ sets: s, rules: rules as SetRules });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigurationError);
      expect((err as Error).message).toMatch(message);
    } finally {
      await Promise.all([s.A.close(), s.B.close()]);
    }
  });

  it('maps ranges, values, weighted hashing and the center deterministically', () => {
    const rules: SetRules = { key: { field: 'u' }, center: 'C', values: { vip: 'A' }, ranges: [{ from: 0, to: 10, set: 'B' }] };
    expect([setOfKey(rules, 'vip'), setOfKey(rules, '3'), setOfKey(rules, '10'), setOfKey(rules, undefined)]).toEqual(['A', 'B', 'C', 'C']);
    const hashed: SetRules = { key: { field: 'u' }, center: 'A', hash: { A: 1, B: 3 } };
    const counts = { A: 0, B: 0 } as Record<string, number>;
    for (let i = 0; i < 4000; i++) counts[setOfKey(hashed, `user-${i}`)]++;
    // Weight 3 : 1, within a few percent.
    expect(counts.B / 4000).toBeGreaterThan(0.7);
    expect(counts.B / 4000).toBeLessThan(0.8);
    expect(setOfKey(hashed, 'user-7')).toBe(setOfKey(hashed, 'user-7'));
  });
});

describe('two RabbitMQ virtual hosts as two sets', () => {
  const suffix = randomUUID().slice(0, 8);
  const vhosts = [`tmm-set-a-${suffix}`, `tmm-set-b-${suffix}`];
  afterAll(async () => {
    for (const v of vhosts) await run('rabbitmqctl', ['-q', 'delete_vhost', v]).catch(() => undefined);
  });

  it('puts each message only in the set of its key, the center takes the rest, and a set header wins over the rules', async () => {
    const [urlA, urlB] = [await withVhost(vhosts[0]), await withVhost(vhosts[1])];
    const a = new AmqpTransport({ url: urlA, logger: silentLogger });
    const b = new AmqpTransport({ url: urlB, logger: silentLogger });
    const routing = new SetRoutingTransport({ sets: { A: a, B: b }, rules: { key: { header: 'x-city' }, center: 'A', values: { paris: 'A', berlin: 'B' } } });
    const queue = `orders-${suffix}`;
    try {
      await routing.declare(topology(queue));
      for (const city of ['paris', 'berlin', 'berlin', 'rome', 'berlin']) await routing.publish(msg(city));
      // A retry copy of a message that was in B: its set header keeps it there although its key says A.
      await routing.publish(msg('paris', { headers: { 'x-city': 'paris', [SetHeaders.set]: 'B', 'tmm-consume-attempt': 2 } }));
      // A set header naming a set that no longer exists is an error naming it, not a silent move.
      const gone = await routing.publish(msg('paris', { headers: { 'x-city': 'paris', [SetHeaders.set]: 'Z' } })).catch((e: unknown) => e);
      expect(gone).toBeInstanceOf(PublishError);
      expect((gone as Error).message).toContain('"Z"');

      const depth = async (t: AmqpTransport) => {
        for (let i = 0; i < 50; i++) {
          const { messageCount } = await t.inspectQueue(queue);
          if (messageCount >= 2) return messageCount;
          await new Promise((r) => setTimeout(r, 20));
        }
        return (await t.inspectQueue(queue)).messageCount;
      };
      expect(await depth(a)).toBe(2); // paris, rome (center)
      expect(await depth(b)).toBe(4); // berlin ×3, the sticky retry copy
      expect(routing.stats.get('B')).toMatchObject({ published: 4, failed: 0 });

      // Consumers per set: deliveries carry the set they came from.
      const seen: Array<[string | undefined, unknown]> = [];
      const onlyB = new SetRoutingTransport({ sets: { A: a, B: b }, consumeFrom: ['B'], rules: { key: { header: 'x-city' }, center: 'A' } });
      await onlyB.subscribe({ queue: topology(queue).queues![0], prefetch: 10 }, async (d: Delivery) => {
        seen.push([d.message.headers['x-city'] as string, d.message.headers[SetHeaders.set]]);
        await d.ack();
      });
      const until = Date.now() + 5_000;
      while (seen.length < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(seen.sort()).toEqual([['berlin', 'B'], ['berlin', 'B'], ['berlin', 'B'], ['paris', 'B']]);
      expect((await a.inspectQueue(queue)).messageCount).toBe(2);
    } finally {
      await routing.close();
    }
  });
});

describe('RabbitMQ + NATS JetStream as two sets', () => {
  let server: PrivateNatsServer;
  beforeAll(async () => {
    server = await PrivateNatsServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('routes by weighted hash to both brokers; with the NATS set killed the RabbitMQ set keeps flowing and the held messages arrive after it returns', async () => {
    const queue = `orders-${randomUUID().slice(0, 8)}`;
    const amqp = new AmqpTransport({ logger: silentLogger });
    const nats = new NatsTransport({ servers: server.url, logger: silentLogger, publishTimeoutMs: 1_000, reconnectTimeWaitMs: 100 });
    const rules: SetRules = { key: { field: 'city' }, center: 'rabbit', hash: { rabbit: 1, nats: 1 } };
    const routing = new SetRoutingTransport({ sets: { rabbit: amqp, nats }, rules });
    try {
      await routing.declare(topology(queue));
      const first = Array.from({ length: 40 }, (_, i) => msg(`city-${i}`));
      for (const m of first) await routing.publish(m);
      const expectNats = first.filter((m) => setOfKey(rules, JSON.parse(m.body.toString()).city) === 'nats').length;
      expect(expectNats).toBeGreaterThan(5);
      expect(expectNats).toBeLessThan(35);
      expect((await nats.inspectQueue(queue)).messageCount).toBe(expectNats);
      const rabbitDepth = async (n: number) => {
        for (let i = 0; i < 100 && (await amqp.inspectQueue(queue)).messageCount < n; i++) await new Promise((r) => setTimeout(r, 20));
        return (await amqp.inspectQueue(queue)).messageCount;
      };
      expect(await rabbitDepth(40 - expectNats)).toBe(40 - expectNats);

      // The NATS set's broker dies. What belongs to it stays pending (here: a list retried as the relay
      // retries its PENDING rows); what belongs to RabbitMQ is published meanwhile.
      await server.kill();
      const second = Array.from({ length: 40 }, (_, i) => msg(`town-${i}`));
      const pending: TransportMessage[] = [];
      for (const m of second) {
        try {
          await routing.publish(m);
        } catch (e) {
          expect(e).toBeInstanceOf(PublishError);
          pending.push(m);
        }
      }
      const secondNats = second.filter((m) => routing.setOf(m) === 'nats');
      expect(pending.map((m) => m.id).sort()).toEqual(secondNats.map((m) => m.id).sort());
      expect(await rabbitDepth(80 - expectNats - secondNats.length)).toBe(80 - expectNats - secondNats.length);

      await server.run();
      const until = Date.now() + 30_000;
      while (pending.length > 0) {
        const m = pending[0];
        try {
          await routing.publish(m);
          pending.shift();
        } catch (e) {
          if (Date.now() > until) throw e;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      // None lost, none duplicated, none moved to the other broker.
      expect((await nats.inspectQueue(queue)).messageCount).toBe(expectNats + secondNats.length);
      expect((await amqp.inspectQueue(queue)).messageCount).toBe(80 - expectNats - secondNats.length);
    } finally {
      await amqp.remove(topology(queue)).catch(() => undefined);
      await nats.remove(topology(queue)).catch(() => undefined);
      await routing.close();
    }
  });
});

describe('a message keeps the set it was sent under', () => {
  it('the set is stored with the outbox row at send time: a rule change between restarts does not move a waiting message', async () => {
    const tag = randomUUID().slice(0, 8);
    const [urlA, urlB] = [await withVhost(`tmm-set-a-${tag}`), await withVhost(`tmm-set-b-${tag}`)];
    const queue = `ledger-${tag}`;
    const ds = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    const sets = () => ({ A: new AmqpTransport({ url: urlA, logger: silentLogger }), B: new AmqpTransport({ url: urlB, logger: silentLogger }) });
    const q: Topology = { exchanges: [{ name: 'tmm.events' }], queues: [{ name: queue, bindings: [{ exchange: 'tmm.events', routingKey: 'ledger.#' }] }] };
    try {
      // Before: every key goes to A. The relay is off, so the message waits in the outbox.
      const before = sets();
      const tmm1 = new Tmm({ dataSource: ds, logger: 'silent', relay: { enabled: false } }, { transport: new SetRoutingTransport({ sets: before, rules: { key: { field: 'entryId' }, center: 'A' } }) });
      await tmm1.start();
      await tmm1.transactions.run(() => tmm1.producer.send(LedgerPosted.of('e-1', 5), { delay: 60_000 }));
      const [row] = await ds.query(`SELECT headers FROM tmm_outbox`);
      expect(JSON.parse(row.headers)[SetHeaders.set]).toBe('A');
      await tmm1.stop();
      // After the restart: the rules now send that key to B; the waiting message still goes to A.
      const after = sets();
      for (const t of Object.values(after)) await t.declare(q);
      await ds.query(`UPDATE tmm_outbox SET available_at = 0, lease_owner = NULL, lease_until = NULL`);
      const tmm2 = new Tmm({ dataSource: ds, logger: 'silent', relay: { pollIntervalMs: 50 } }, { transport: new SetRoutingTransport({ sets: after, rules: { key: { field: 'entryId' }, center: 'B', values: { 'e-1': 'B' } } }) });
      await tmm2.start();
      try {
        const until = Date.now() + 10_000;
        while ((await after.A.inspectQueue(queue)).messageCount < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        expect((await after.A.inspectQueue(queue)).messageCount).toBe(1);
        expect((await after.B.inspectQueue(queue)).messageCount).toBe(0);
      } finally {
        await tmm2.stop();
      }
    } finally {
      if (ds.isInitialized) await ds.destroy();
      for (const v of [`tmm-set-a-${tag}`, `tmm-set-b-${tag}`]) await run('rabbitmqctl', ['-q', 'delete_vhost', v]);
    }
  });
});
