/**
 * Classic → quorum migration of a consumer's queues (work, retry, dead-letter) on the local RabbitMQ, run
 * through the CLI in its own process (`tmm amqp migrate-to-quorum`), checked with a raw amqplib client:
 * every message id in the quorum queues exactly once, properties and headers as they were, a retry copy's
 * remaining delay kept; tmm's consumers then start on the quorum queues and consume them. A migration
 * SIGKILLed while parking and again while restoring, then run again: no message lost, duplicates counted
 * (at most the moving window each kill); and runs resumed from broker states a crash leaves behind. Unique queue names per test; tests of this file run one after
 * another (the migration takes a per-vhost lock).
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as amqp from 'amqplib';
import { AmqpTransport, type ConsumeContext, type QueueSpec, Tmm, type Topology, holdingQueueName, queueArguments, silentLogger } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { onChannel as onChannelOf } from '../support/broker';
import { AMQP_URL, ConsumerTestEnv, sleep, uniquePrefix, waitUntil } from '../support/consumers';

const root = resolve(__dirname, '..', '..');
const ENTRY = join(root, 'src', 'admin', 'cli', 'main.ts');
const cliArgs = (args: string[]) => ['-r', join(root, 'test', 'support', 'register.js'), ENTRY, ...args];

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, cliArgs(args), { cwd: root, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const RETRY_DELAY = 600_000;

function ledgerConsumer(prefix: string, seen: string[]) {
  class Ledger {
    @Consumer({ queue: `${prefix}.work`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 3, delays: [RETRY_DELAY, 2 * RETRY_DELAY] } })
    async post(_entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
      seen.push(ctx.messageId);
    }
  }
  return new Ledger();
}

describe('tmm amqp migrate-to-quorum (RabbitMQ)', () => {
  let env: ConsumerTestEnv;
  let conn: amqp.ChannelModel;
  let dir: string;
  let prefix: string;
  let queues: string[];

  beforeAll(async () => {
    env = await ConsumerTestEnv.create('sqlite', 'amqp');
    conn = await amqp.connect(AMQP_URL);
    dir = mkdtempSync(join(tmpdir(), 'tmm-quorum-'));
  });
  afterAll(async () => {
    await conn?.close();
    await env?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('qm');
  });
  afterEach(async () => {
    for (const q of queues ?? []) for (const name of [q, holdingQueueName(q)]) await onChannel((ch) => ch.deleteQueue(name)).catch(() => undefined);
    await onChannel((ch) => ch.deleteExchange(prefix)).catch(() => undefined);
    await env.cleanup();
  });

  const onChannel = <T>(fn: (ch: amqp.Channel) => Promise<T>): Promise<T> => onChannelOf(conn, fn);

  /** A tmm configured with `queueType`, its consumer registered but not started: what its topology is. */
  function topologyOf(queueType: 'classic' | 'quorum', seen: string[] = []): Required<Topology> {
    const tmm = new Tmm({ dataSource: env.db.dataSource, transport: 'memory', logger: 'silent', consumers: { queueType } });
    tmm.consumers.register(ledgerConsumer(prefix, seen));
    return tmm.consumers.topology();
  }

  /** Declares the classic queues as a tmm with queueType classic does. */
  async function declareClassic(): Promise<Required<Topology>> {
    const classic = topologyOf('classic');
    const t = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-quorum-migration-test' });
    try {
      await t.declare(classic);
    } finally {
      await t.close();
    }
    queues = classic.queues.map((q) => q.name);
    return classic;
  }

  function writeTopology(): string {
    const file = join(dir, `${prefix}.json`);
    writeFileSync(file, JSON.stringify(topologyOf('quorum')));
    return file;
  }

  /** Publishes `n` messages (confirmed) to an exchange/routing key with tmm-like properties; returns their ids. */
  async function publish(n: number, exchange: string, routingKey: string, over: (i: number) => amqp.Options.Publish = () => ({})): Promise<string[]> {
    const ch = await conn.createConfirmChannel();
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      ids.push(id);
      const o = over(i);
      ch.publish(exchange, routingKey, Buffer.from(JSON.stringify({ entryId: `e-${i}`, amount: i + 1, currency: 'EUR' })), {
        persistent: true,
        messageId: id,
        contentType: 'application/json',
        correlationId: `corr-${id}`,
        type: 'ledger.posted',
        appId: 'migration-test',
        timestamp: 1_700_000_000,
        ...o,
        headers: { 'tmm-topic': 'ledger.posted', 'tmm-timestamp-ms': 1_700_000_000_123, 'tmm-contract-version': 2, ...(o.headers ?? {}) },
      });
      if (i % 500 === 499) await ch.waitForConfirms();
    }
    await ch.waitForConfirms();
    await ch.close();
    return ids;
  }

  /** Every message in a queue (got without ack, then given back when the channel closes). */
  async function readAll(queue: string): Promise<amqp.GetMessage[]> {
    return onChannel(async (ch) => {
      const out: amqp.GetMessage[] = [];
      for (;;) {
        const m = await ch.get(queue, { noAck: false });
        if (m === false) return out;
        out.push(m);
      }
    });
  }

  const exists = (queue: string) => onChannel((ch) => ch.checkQueue(queue)).then(() => true, () => false);
  const depth = (queue: string) => onChannel((ch) => ch.checkQueue(queue)).then((q) => q.messageCount, () => -1);
  /** True when the queue is declared exactly as tmm's quorum spec says (a redeclaration with those arguments is accepted). */
  const isQuorum = async (spec: QueueSpec) =>
    onChannel((ch) => ch.assertQueue(spec.name, { durable: true, arguments: queueArguments({ ...spec, type: 'quorum' }) })).then(() => true, () => false);

  it('moves N messages of the classic work, retry and dead-letter queues into quorum queues of the same names; tmm consumes them with queueType quorum', async () => {
    const classic = await declareClassic();
    const work = `${prefix}.work`;
    const retry = `${prefix}.work.retry.${RETRY_DELAY}ms`;
    const dlq = `${prefix}.work.dlq`;
    expect(queues.sort()).toEqual([work, retry, `${prefix}.work.retry.${2 * RETRY_DELAY}ms`, dlq].sort());
    // Before: a quorum declaration is refused (the 406 this command exists for).
    expect(await isQuorum(classic.queues.find((q) => q.name === work)!)).toBe(false);

    const workIds = await publish(300, prefix, 'work', (i) => (i === 0 ? { expiration: '3600000' } : {}));
    const failedAt = new Date(Date.now() - 60_000).toISOString();
    const retryIds = await publish(100, '', retry, () => ({ headers: { 'tmm-consume-attempt': 2, 'tmm-last-failure-at': failedAt, 'tmm-original-exchange': prefix, 'tmm-original-routing-key': 'work' } }));
    const deadIds = await publish(20, '', dlq, () => ({ headers: { 'tmm-dead-letter-reason': 'max-attempts', 'tmm-consumer': 'Ledger.post' } }));

    const r = await cli(['--json', 'amqp', 'migrate-to-quorum', '--url', AMQP_URL, '--topology', writeTopology()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { queues: { queue: string; role: string; before: string; after: string; parked: number; restored: number }[]; restored: number };
    expect(report.restored).toBe(420);
    expect(Object.fromEntries(report.queues.map((q) => [q.queue, [q.role, q.before, q.after, q.parked, q.restored]]))).toEqual({
      [work]: ['work', 'classic', 'quorum', 300, 300],
      [retry]: ['retry', 'classic', 'quorum', 100, 100],
      [`${prefix}.work.retry.${2 * RETRY_DELAY}ms`]: ['retry', 'classic', 'quorum', 0, 0],
      [dlq]: ['dead-letter', 'classic', 'quorum', 20, 20],
    });

    // After: each queue is tmm's quorum declaration, the holding queues are gone.
    const quorum = topologyOf('quorum');
    for (const spec of quorum.queues) {
      expect(await isQuorum(spec)).toBe(true);
      expect(await exists(holdingQueueName(spec.name))).toBe(false);
    }
    const inWork = await readAll(work);
    const inRetry = await readAll(retry);
    const inDead = await readAll(dlq);
    expect(inWork.map((m) => m.properties.messageId)).toEqual(workIds); // every id, once, in order
    expect(inRetry.map((m) => m.properties.messageId)).toEqual(retryIds);
    expect(inDead.map((m) => m.properties.messageId)).toEqual(deadIds);

    // Properties and headers as published.
    const p = inWork[1].properties;
    expect(p).toMatchObject({ contentType: 'application/json', correlationId: `corr-${workIds[1]}`, type: 'ledger.posted', appId: 'migration-test', timestamp: 1_700_000_000, deliveryMode: 2 });
    expect(p.headers).toMatchObject({ 'tmm-topic': 'ledger.posted', 'tmm-timestamp-ms': 1_700_000_000_123, 'tmm-contract-version': 2 });
    expect(p.headers!['tmm-migration-expiration']).toBeUndefined();
    expect(inWork[0].properties.expiration).toBe('3600000'); // a message's own TTL survives the holding queue
    expect(inWork[1].properties.expiration).toBeUndefined();
    expect(inDead[0].properties.headers).toMatchObject({ 'tmm-dead-letter-reason': 'max-attempts', 'tmm-consumer': 'Ledger.post' });
    // A retry copy failed 60 s ago: it goes back with what is left of its 600 s delay, not a fresh 600 s.
    const left = Number(inRetry[0].properties.expiration);
    expect(left).toBeGreaterThan(RETRY_DELAY - 60_000 - 60_000);
    expect(left).toBeLessThanOrEqual(RETRY_DELAY - 60_000);
    expect(inRetry[0].properties.headers).toMatchObject({ 'tmm-consume-attempt': 2, 'tmm-last-failure-at': failedAt });

    // Running it again changes nothing.
    const again = await cli(['--json', 'amqp', 'migrate-to-quorum', '--url', AMQP_URL, '--topology', writeTopology()]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).queues.map((q: { before: string; restored: number }) => [q.before, q.restored])).toEqual(quorum.queues.map(() => ['quorum', 0]));

    // tmm with queueType quorum starts on them (no 406) and consumes the work queue.
    const seen: string[] = [];
    await env.start([ledgerConsumer(prefix, seen)], { consumers: { queueType: 'quorum' } });
    await waitUntil(() => seen.length >= 300, 'the 300 work messages consumed', 60_000);
    await sleep(200);
    expect([...seen].sort()).toEqual([...workIds].sort());
    expect(await depth(retry)).toBe(100);
  }, 120_000);

  it('refuses while a consumer is attached (exit 4) and leaves the queues as they were', async () => {
    await declareClassic();
    const work = `${prefix}.work`;
    await publish(5, prefix, 'work');
    const ch = await conn.createChannel();
    await ch.consume(work, () => undefined, { noAck: false });
    try {
      const r = await cli(['amqp', 'migrate-to-quorum', '--url', AMQP_URL, '--topology', writeTopology()]);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`queue "${work.replace(/\./g, '\\.')}" has 1 consumer\\(s\\): stop the consumers`));
    } finally {
      await ch.close();
    }
    expect(await exists(holdingQueueName(work))).toBe(false);
    await waitUntil(async () => (await depth(work)) === 5, 'the 5 messages back in the classic work queue');
    const bad = await cli(['amqp', 'migrate-to-quorum', '--url', AMQP_URL, '--topology', join(dir, 'missing.json')]);
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/cannot read --topology/);
  }, 60_000);

  it('resumes from states a crash can leave: the classic work queue deleted with its messages held; a retry queue half parked', async () => {
    await declareClassic();
    const work = `${prefix}.work`;
    const retry = `${prefix}.work.retry.${RETRY_DELAY}ms`;
    // As if killed between deleting the classic work queue and declaring the quorum one.
    await onChannel((ch) => ch.assertQueue(holdingQueueName(work), { durable: true, arguments: { 'x-queue-type': 'quorum' } }));
    await onChannel((ch) => ch.bindQueue(holdingQueueName(work), prefix, 'work'));
    await onChannel((ch) => ch.deleteQueue(work));
    const held = await publish(40, '', holdingQueueName(work));
    const arrivedMeanwhile = await publish(10, prefix, 'work'); // a relay kept publishing: the holding queue is bound
    // As if killed while parking the retry queue: some copies moved, some not.
    await onChannel((ch) => ch.assertQueue(holdingQueueName(retry), { durable: true, arguments: { 'x-queue-type': 'quorum' } }));
    const retryHeld = await publish(15, '', holdingQueueName(retry));
    const retryLeft = await publish(15, '', retry);

    const r = await cli(['--json', 'amqp', 'migrate-to-quorum', '--url', AMQP_URL, '--topology', writeTopology()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { queues: { queue: string; before: string; resumed: boolean; after: string }[] };
    expect(report.queues.find((q) => q.queue === work)).toMatchObject({ before: 'absent', resumed: true, after: 'quorum' });
    expect(report.queues.find((q) => q.queue === retry)).toMatchObject({ before: 'classic', resumed: true, after: 'quorum' });
    for (const spec of topologyOf('quorum').queues) {
      expect(await isQuorum(spec)).toBe(true);
      expect(await exists(holdingQueueName(spec.name))).toBe(false);
    }
    expect((await readAll(work)).map((m) => m.properties.messageId).sort()).toEqual([...held, ...arrivedMeanwhile].sort());
    expect((await readAll(retry)).map((m) => m.properties.messageId).sort()).toEqual([...retryHeld, ...retryLeft].sort());
    // The work queue is bound again: a new message reaches it (and no longer the holding queue, which is gone).
    const late = await publish(1, prefix, 'work');
    await waitUntil(async () => (await depth(work)) === 51, 'the late message in the work queue');
    expect((await readAll(work)).map((m) => m.properties.messageId)).toContain(late[0]);
  }, 60_000);

  it('SIGKILLed while parking and again while restoring, then run again: every message id arrives, duplicates counted', async () => {
    await declareClassic();
    const work = `${prefix}.work`;
    const holding = holdingQueueName(work);
    const N = 8_000;
    const ids = await publish(N, prefix, 'work');
    const file = writeTopology();
    const args = ['amqp', 'migrate-to-quorum', '--url', AMQP_URL, '--topology', file, '--prefetch', '32'];

    const killWhen = async (what: string, condition: () => Promise<boolean>): Promise<void> => {
      const child: ChildProcess = spawn(process.execPath, cliArgs(args), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let exited = false;
      let stderr = '';
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      const gone = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
      try {
        await waitUntil(async () => exited || (await condition()), what, 120_000);
        if (exited) throw new Error(`the migration finished before it could be killed ${what}: ${stderr}`);
        child.kill('SIGKILL');
        await gone;
      } finally {
        if (!exited) child.kill('SIGKILL');
      }
    };

    // 1. Midway through parking: part of the work queue moved to the holding queue.
    await killWhen('while parking', async () => (await depth(holding)) > 1000 && (await depth(work)) > 1000);
    expect(await depth(work)).toBeGreaterThan(0);
    // 2. Midway through restoring: the work queue is quorum already and refilling from the holding queue.
    let replaced = false;
    await killWhen('while restoring', async () => {
      const w = await depth(work);
      if (w <= 0) replaced = true; // deleted (-1) or freshly declared (0)
      return replaced && w > 1000 && (await depth(holding)) > 1000;
    });
    expect(await exists(holding)).toBe(true);
    // 3. Run to the end.
    const r = await cli(['--json', ...args]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { queues: { queue: string; before: string; resumed: boolean; after: string }[] };
    expect(report.queues.find((q) => q.queue === work)).toMatchObject({ before: 'quorum', resumed: true, after: 'quorum' });
    expect(await exists(holding)).toBe(false);
    expect(await isQuorum(topologyOf('quorum').queues.find((q) => q.name === work)!)).toBe(true);

    const got = (await readAll(work)).map((m) => m.properties.messageId as string);
    const counts = new Map<string, number>();
    for (const id of got) counts.set(id, (counts.get(id) ?? 0) + 1);
    const lost = ids.filter((id) => !counts.has(id));
    const duplicates = got.length - counts.size;
    const foreign = [...counts.keys()].filter((id) => !ids.includes(id));
    // Reported for the docs: duplicates are the copies confirmed but not yet acked when the process died.
    process.stdout.write(`quorum migration, 2 SIGKILLs: ${N} messages, lost ${lost.length}, duplicates ${duplicates}\n`);
    expect(lost).toEqual([]);
    expect(foreign).toEqual([]);
    expect(duplicates).toBeLessThanOrEqual(2 * 32);
  }, 300_000);
});
