/**
 * Issue 10, case 1: dead letters a database cannot store as text — a NUL in the body, a NUL in the AMQP
 * message id, a body that is not UTF-8 — are stored (the body's exact bytes, base64 with a flag) instead of
 * looping, and a resend publishes the bytes that were received. Real RabbitMQ; PostgreSQL, SQLite and MariaDB.
 * Ground truth: the dead-letter queue depth from the broker, the rows with SQL, the resent bodies read by a
 * raw amqplib consumer.
 */
import * as amqplib from 'amqplib';
import { randomUUID } from 'node:crypto';
import { AmqpTransport, ConsumeContext, ConsumerHeaders, Topology, silentLogger } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { AdminHarness, startAdminHarness } from '../support/adminHarness';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, sleep, uniquePrefix, waitUntil } from '../support/consumers';
import type { DbKind } from '../support/databases';
import { dbLanes } from '../support/databases';

describe.each(dbLanes().map((l) => [l.name, l.kind] as [string, DbKind]))('dead letters that are not text, on %s', (_name, kind) => {
  let h: AdminHarness | undefined;
  const topology: Required<Topology> = { exchanges: [], queues: [] };

  afterEach(async () => {
    await h?.dispose();
    h = undefined;
    const admin = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-dl-poison-cleanup' });
    try {
      await admin.remove({ queues: topology.queues.splice(0), exchanges: topology.exchanges.splice(0) });
    } finally {
      await admin.close();
    }
  });

  it('NUL in the body, NUL in the id and a non-UTF-8 body are stored once each, acked, and resent byte-exact', async () => {
    const prefix = uniquePrefix('dlp');
    class Ledger {
      @Consumer({ queue: `${prefix}.ledger`, exchange: prefix, routingKey: 'ledger.#', retry: { maxAttempts: 2, delays: [50] } })
      async post(_entry: LedgerPosted, _ctx: ConsumeContext): Promise<void> {}
    }
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-dl-poison', confirmTimeoutMs: 5000 });
    h = await startAdminHarness(kind, { consumers: [new Ledger()], transport, admin: { port: 0, auth: { tokens: { ops: 'dl-poison-token-0001' } }, collector: { retryDelayMs: 50 } } });
    const def = h.tmm.consumers.definitions[0];
    topology.queues.push({ name: def.queue }, { name: def.deadLetterQueue }, ...def.delays.map((ms) => ({ name: `${def.queue}.retry.${ms}ms` })));
    topology.exchanges.push({ name: prefix });
    // Resends go "to route": this exchange and routing key, into a queue read with a raw client.
    const rawQueue = `${prefix}.raw`;
    topology.queues.push({ name: rawQueue });
    await transport.declare({ queues: [{ name: rawQueue, bindings: [{ exchange: prefix, routingKey: 'raw' }] }] });

    const bodies: { id: string; body: Buffer }[] = [
      { id: randomUUID(), body: Buffer.from('{"entryId":"a\u0000b","amount":1}', 'utf8') },
      { id: `id-with-\u0000-nul-${randomUUID().slice(0, 8)}`, body: Buffer.from('{"entryId":"c","amount":2}') },
      { id: randomUUID(), body: Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x80]) },
    ];
    for (const b of bodies) {
      await transport.publish({
        id: b.id,
        exchange: '',
        routingKey: def.deadLetterQueue,
        body: b.body,
        headers: {
          [ConsumerHeaders.errorMessage]: 'boom \u0000 with a NUL',
          [ConsumerHeaders.consumer]: 'Ledger.post',
          [ConsumerHeaders.originalExchange]: prefix,
          [ConsumerHeaders.originalRoutingKey]: 'raw',
        },
        contentType: 'application/octet-stream',
        timestamp: Date.now(),
      });
    }
    await waitUntil(async () => (await transport.inspectQueue(def.deadLetterQueue)).messageCount === 0 && h!.admin.collector.stats.stored === 3, 'the three dead letters stored and acked', 20_000);
    await sleep(500); // a store loop would show as failures now
    expect(h.admin.collector.stats).toMatchObject({ stored: 3, failed: 0, duplicates: 0 });
    const [{ n }] = (await h.db.dataSource.query('SELECT COUNT(*) AS n FROM tmm_dead_letter')) as { n: string | number }[];
    expect(Number(n)).toBe(3);

    const conn = await amqplib.connect(AMQP_URL);
    const ch = await conn.createChannel();
    const received: Buffer[] = [];
    await ch.consume(rawQueue, (m) => {
      if (m) {
        received.push(m.content);
        ch.ack(m);
      }
    });
    try {
      const letters = (await h.admin.deadLetters.list({}, { limit: 10, offset: 0 })).items;
      expect(letters).toHaveLength(3);
      for (const l of letters) await h.admin.service.resendOne('test', l.id, { to: 'route' });
      await waitUntil(() => received.length === 3, 'the three resends on the raw queue', 20_000);
      const hex = (b: Buffer) => b.toString('hex');
      expect(received.map(hex).sort()).toEqual(bodies.map((b) => hex(b.body)).sort());
      const nulId = letters.find((l) => l.messageId.startsWith('base64:'));
      expect(nulId && Buffer.from(nulId.messageId.slice('base64:'.length), 'base64').toString('utf8')).toBe(bodies[1].id);
    } finally {
      await conn.close();
    }
  });
});
