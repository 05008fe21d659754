/**
 * The wire format against a foreign client: Python's pika (Debian's python3-pika, installed by
 * scripts/setup.sh test), not amqplib. pika publishes into tmm consumers (messages without a message id,
 * deduplicated by a header or a payload field, topic from the routing key or a configured header; one
 * with neither id nor key is dead-lettered `missing-message-id`), and pika reads what the relay published
 * (type, app_id, correlation_id, message_id, timestamp + tmm-timestamp-ms, the attempt counter, the opt-in
 * CloudEvents attributes). Ground truth: SQL rows and what pika printed. RabbitMQ and PostgreSQL are local.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';
import { AmqpTransport, type ConsumeContext, ConsumerHeaders, Tmm, WireHeaders, silentLogger } from '../../src/internal';
import { Consumer, Idempotent } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, uniquePrefix, waitUntil } from '../support/consumers';
import { type TestDatabase, createTestDatabase } from '../support/databases';
import { LedgerEntry } from '../support/entities';

const run = promisify(execFile);
/** Debian's python3 (python3-pika installs there; a pyenv python3 earlier on PATH would not have it). */
const PYTHON = process.env.TMM_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const SCRIPT = join(__dirname, '..', 'fixtures', 'pika_client.py');
const P = uniquePrefix('pika');
const BY_HEADER = `${P}.by-header`;
const BY_PATH = `${P}.by-path`;
const NO_KEY = `${P}.no-key`;

class ForeignHandlers {
  @Consumer({ queue: BY_HEADER, exchange: P, routingKey: 'ledger.header.#', retry: false, topicHeader: 'eventType' })
  @Idempotent({ key: { header: 'x-entry-id' } })
  async byHeader(event: LedgerPosted, ctx: ConsumeContext): Promise<void> {
    if (event.entryId.startsWith('fail-')) throw new Error(`entry ord-${randomUUID().slice(0, 8)} refused`);
    await ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: event.entryId, amount: event.amount });
  }

  @Consumer({ queue: BY_PATH, exchange: P, routingKey: 'ledger.path.#', retry: false })
  @Idempotent({ key: { path: 'entryId' } })
  async byPath(event: LedgerPosted, ctx: ConsumeContext): Promise<void> {
    if (event.entryId.startsWith('fail-')) throw new Error(`entry ord-${randomUUID().slice(0, 8)} refused`);
    await ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: event.entryId, amount: event.amount });
  }

  @Consumer({ queue: NO_KEY, exchange: P, routingKey: 'ledger.nokey', retry: false })
  @Idempotent()
  async noKey(event: LedgerPosted, ctx: ConsumeContext): Promise<void> {
    await ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: event.entryId, amount: event.amount });
  }
}

interface PikaMessage {
  routing_key: string;
  message_id: string | null;
  type: string | null;
  app_id: string | null;
  correlation_id: string | null;
  timestamp: number | null;
  content_type: string | null;
  delivery_mode: number;
  headers: Record<string, unknown>;
  body: string;
}

async function pikaPublish(exchange: string, routingKey: string, ...messages: object[]): Promise<void> {
  await run(PYTHON, [SCRIPT, 'publish', AMQP_URL, exchange, routingKey, ...messages.map((m) => JSON.stringify(m))]);
}

async function pikaGet(queue: string, count: number): Promise<PikaMessage[]> {
  const { stdout } = await run(PYTHON, [SCRIPT, 'get', AMQP_URL, queue, String(count), '15']);
  return stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PikaMessage);
}

describe('the wire format with a foreign client (python3-pika) on RabbitMQ and PostgreSQL', () => {
  let db: TestDatabase;
  let raw: amqp.ChannelModel;
  let channel: amqp.Channel;
  const tmms: Tmm[] = [];
  const queues = [BY_HEADER, BY_PATH, NO_KEY, `${BY_HEADER}.dlq`, `${BY_PATH}.dlq`, `${NO_KEY}.dlq`, `${P}.out`, `${P}.ce`];

  beforeAll(async () => {
    try {
      execFileSync(PYTHON, ['-c', 'import pika'], { stdio: 'pipe' });
    } catch {
      throw new Error(`python3-pika is not installed for ${PYTHON}: run "bash scripts/setup.sh test" (apt-get install -y python3-pika), or set TMM_PYTHON to a python3 that has pika`);
    }
    db = await createTestDatabase('postgres', [LedgerEntry]);
    raw = await amqp.connect(AMQP_URL);
    channel = await raw.createChannel();
  });
  afterEach(async () => {
    for (const t of tmms.splice(0)) await t.stop();
  });
  afterAll(async () => {
    for (const q of queues) await channel?.deleteQueue(q).catch(() => undefined);
    await channel?.deleteExchange(P).catch(() => undefined);
    await raw?.close();
    await db?.dispose();
  });

  async function startTmm(extra: { cloudEvents?: { source: string } } = {}, consumers = true): Promise<Tmm> {
    const tmm = new Tmm({
      dataSource: db.dataSource,
      transport: new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-pika-test', appId: 'ledger-service', ...extra }),
      logger: 'silent',
      producer: { defaultExchange: P },
      relay: { pollIntervalMs: 50 },
      consumers: { enabled: consumers },
    });
    if (consumers) tmm.consumers.register(new ForeignHandlers());
    await tmm.start();
    tmms.push(tmm);
    return tmm;
  }
  const rows = async (account: string): Promise<number> => Number((await db.dataSource.query('SELECT COUNT(*) AS n FROM test_ledger WHERE account = $1', [account]))[0].n);

  it('deduplicates foreign messages without a message id by a header or a payload field, and dead-letters one with neither', async () => {
    const tmm = await startTmm();
    const body = (entryId: string) => ({ entryId, amount: 7, currency: 'EUR' });
    // Twice each, no message_id: once by the header, once by the payload field.
    await pikaPublish(P, 'ledger.header.created', { body: body('h-1'), headers: { 'x-entry-id': 'h-1' } }, { body: body('h-1'), headers: { 'x-entry-id': 'h-1' } });
    await pikaPublish(P, 'ledger.path.created', { body: body('p-1') }, { body: body('p-1') });
    await waitUntil(() => tmm.consumers.stats.duplicates >= 2, 'both duplicates skipped');
    expect(await rows('h-1')).toBe(1);
    expect(await rows('p-1')).toBe(1);
    expect(tmm.consumers.statsByConsumer.get('ForeignHandlers.byHeader')).toMatchObject({ handled: 1, duplicates: 1 });

    // Neither a message id nor a key: the clear missing-message-id dead letter, read back by pika.
    await pikaPublish(P, 'ledger.nokey', { body: body('n-1') });
    const [dead] = await pikaGet(`${NO_KEY}.dlq`, 1);
    expect(dead.headers).toMatchObject({ [ConsumerHeaders.deadLetterReason]: 'missing-message-id', [ConsumerHeaders.errorCode]: 'TMM_MESSAGE_ID_MISSING', [ConsumerHeaders.attempt]: 1 });
    expect(String(dead.headers[ConsumerHeaders.errorMessage])).toContain('@Idempotent({ key })');
    expect(await rows('n-1')).toBe(0);
    // A header key that is absent also dead-letters, naming the header.
    await pikaPublish(P, 'ledger.header.created', { body: body('h-2') });
    const [noHeader] = await pikaGet(`${BY_HEADER}.dlq`, 1);
    expect(String(noHeader.headers[ConsumerHeaders.errorMessage])).toContain('header "x-entry-id"');
  });

  it("gives a foreign message's dead letter its topic from the configured header or the routing key, keeps its AMQP properties", async () => {
    await startTmm();
    await pikaPublish(P, 'ledger.header.created', { body: { entryId: 'fail-1', amount: 1, currency: 'EUR' }, headers: { 'x-entry-id': 'f-1', eventType: 'LedgerEntryCreated' }, correlation_id: 'corr-9', type: 'ignored.when.header.set' });
    await pikaPublish(P, 'ledger.path.created', { body: { entryId: 'fail-2', amount: 1, currency: 'EUR' } });
    const [byHeader] = await pikaGet(`${BY_HEADER}.dlq`, 1);
    const [byKey] = await pikaGet(`${BY_PATH}.dlq`, 1);
    expect(byHeader.headers['tmm-topic']).toBe('LedgerEntryCreated');
    expect(byHeader.correlation_id).toBe('corr-9');
    expect(byHeader.app_id).toBe('pika-test');
    expect(byKey.headers['tmm-topic']).toBe('ledger.path.created');
    expect(byKey.headers[ConsumerHeaders.originalRoutingKey]).toBe('ledger.path.created');
  });

  it('publishes what other stacks expect: type, app_id, correlation_id, message_id, timestamp with milliseconds, one attempt counter', async () => {
    await channel.assertQueue(`${P}.out`, { durable: true });
    await channel.assertExchange(P, 'topic', { durable: true });
    await channel.bindQueue(`${P}.out`, P, 'ledger.posted');
    const tmm = await startTmm({}, false);
    const before = Date.now();
    const id = await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of('out-1', 9), { headers: { [WireHeaders.correlationId]: 'order-42' } }));
    const id2 = await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of('out-2', 9)));
    const got = await pikaGet(`${P}.out`, 2);
    const m = got.find((x) => x.message_id === id)!;
    expect(m).toMatchObject({ type: 'ledger.posted', app_id: 'ledger-service', correlation_id: 'order-42', content_type: 'application/json', delivery_mode: 2, routing_key: 'ledger.posted' });
    expect(JSON.parse(m.body)).toEqual({ entryId: 'out-1', amount: 9, currency: 'EUR' });
    const ms = Number(m.headers[WireHeaders.timestampMs]);
    expect(ms).toBeGreaterThanOrEqual(before - 5);
    expect(m.timestamp).toBe(Math.floor(ms / 1000));
    expect(m.headers).toMatchObject({ 'tmm-publish-attempt': 1, 'tmm-topic': 'ledger.posted', 'tmm-contract-version': 2 });
    expect(m.headers['tmm-attempt']).toBeUndefined();
    // Without a correlation id header, correlation_id is the message id.
    expect(got.find((x) => x.message_id === id2)!.correlation_id).toBe(id2);
  });

  it('adds CloudEvents binary-mode attributes when asked', async () => {
    await channel.assertExchange(P, 'topic', { durable: true });
    await channel.assertQueue(`${P}.ce`, { durable: true });
    await channel.bindQueue(`${P}.ce`, P, 'ledger.posted');
    const tmm = await startTmm({ cloudEvents: { source: '/ledger-service' } }, false);
    const id = await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of('ce-1', 1)));
    const [m] = await pikaGet(`${P}.ce`, 1);
    expect(m.message_id).toBe(id);
    expect(m.headers).toMatchObject({ cloudEvents_specversion: '1.0', cloudEvents_id: id, cloudEvents_source: '/ledger-service', cloudEvents_type: 'ledger.posted' });
    expect(Date.parse(String(m.headers.cloudEvents_time))).toBe(Number(m.headers[WireHeaders.timestampMs]));
  });
});
