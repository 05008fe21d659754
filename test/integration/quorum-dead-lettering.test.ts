/**
 * At-least-once dead-lettering of tmm's quorum queues (`x-dead-letter-strategy: at-least-once` with
 * `x-overflow: reject-publish`), tested by stopping the target path on a private RabbitMQ node whose
 * dead-letter worker retries unconfirmed dead letters every 2 s (dead_letter_worker_publisher_confirm_timeout,
 * 180 s by default). Retry copies expire from a quorum retry queue into the work queue while that queue is
 * deleted, or full (a max-length policy, reject-publish): they stay in the retry queue (counted by
 * rabbitmqctl) instead of being dropped, and every one arrives once the target is back — counted with a raw
 * amqplib client. The same with classic queues (at-most-once) drops them: shown for comparison.
 */
import { randomUUID } from 'node:crypto';
import * as amqp from 'amqplib';
import { AmqpTransport, type ConsumeContext, type QueueSpec, Tmm, type Topology, silentLogger } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { onChannel as onChannelOf } from '../support/broker';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { sleep, uniquePrefix, waitUntil } from '../support/consumers';
import { PrivateRabbit } from '../support/privateRabbit';

const CONFIRM_TIMEOUT_MS = 2000;
const DELAY = 300;
const N = 50;

describe('quorum queues dead-letter at least once (private RabbitMQ, target path stopped)', () => {
  let rabbit: PrivateRabbit;
  let db: TestDatabase;
  let conn: amqp.ChannelModel;
  let prefix: string;

  beforeAll(async () => {
    rabbit = await PrivateRabbit.create({ advancedConfig: `[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, ${CONFIRM_TIMEOUT_MS}}]}].\n` });
    db = await createTestDatabase('sqlite', []);
    conn = await amqp.connect(rabbit.url);
  }, 120_000);
  afterAll(async () => {
    await conn?.close().catch(() => undefined);
    await db?.dispose();
    await rabbit?.dispose();
  });
  beforeEach(() => {
    prefix = uniquePrefix('dlx');
  });

  /** tmm's queues for one consumer with one retry delay, as a tmm with `queueType` declares them. */
  async function declare(queueType: 'classic' | 'quorum'): Promise<{ work: QueueSpec; retry: QueueSpec; topology: Required<Topology> }> {
    class Ledger {
      @Consumer({ queue: `${prefix}.work`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 2, delays: [DELAY] } })
      async post(_e: LedgerPosted, _ctx: ConsumeContext): Promise<void> {}
    }
    const tmm = new Tmm({ dataSource: db.dataSource, transport: 'memory', logger: 'silent', consumers: { queueType } });
    tmm.consumers.register(new Ledger());
    const topology = tmm.consumers.topology();
    const t = new AmqpTransport({ url: rabbit.url, logger: silentLogger });
    try {
      await t.declare(topology);
    } finally {
      await t.close();
    }
    const work = topology.queues.find((q) => q.name === `${prefix}.work`)!;
    const retry = topology.queues.find((q) => q.messageTtl === DELAY && q.deadLetterRoutingKey === work.name)!;
    return { work, retry, topology };
  }

  const onChannel = <T>(fn: (ch: amqp.Channel) => Promise<T>): Promise<T> => onChannelOf(conn, fn);

  /** Retry copies as tmm's consumer publishes them (default exchange, routing key = retry queue). */
  async function publishRetries(retry: string): Promise<string[]> {
    const ch = await conn.createConfirmChannel();
    const ids = Array.from({ length: N }, () => randomUUID());
    for (const id of ids) {
      ch.publish('', retry, Buffer.from('{"entryId":"e","amount":1,"currency":"EUR"}'), {
        persistent: true,
        messageId: id,
        contentType: 'application/json',
        headers: { 'tmm-consume-attempt': 2, 'tmm-original-exchange': prefix, 'tmm-original-routing-key': 'work' },
      });
    }
    await ch.waitForConfirms();
    await ch.close();
    return ids;
  }

  /** `messages` and `messages_ready` as the broker counts them; a quorum queue's `messages` includes dead letters it still holds. */
  function counts(queue: string): { messages: number; ready: number } | undefined {
    const line = rabbit
      .ctl(['list_queues', '-q', '--no-table-headers', 'name', 'messages', 'messages_ready'])
      .split('\n')
      .map((l) => l.split('\t'))
      .find((cols) => cols[0] === queue);
    return line ? { messages: Number(line[1]), ready: Number(line[2]) } : undefined;
  }

  async function readIds(queue: string): Promise<string[]> {
    return onChannel(async (ch) => {
      const ids: string[] = [];
      for (;;) {
        const m = await ch.get(queue, { noAck: true });
        if (m === false) return ids;
        ids.push(m.properties.messageId as string);
      }
    });
  }

  function tally(expected: string[], got: string[]): { lost: number; duplicates: number; foreign: number } {
    const seen = new Set(got);
    return { lost: expected.filter((id) => !seen.has(id)).length, duplicates: got.length - seen.size, foreign: [...seen].filter((id) => !expected.includes(id)).length };
  }

  /** Waits until the retry queue's copies all expired (none ready) and then several worker retry rounds more. */
  async function expiredAndHeld(retry: string): Promise<{ messages: number; ready: number } | undefined> {
    await waitUntil(() => counts(retry)?.ready === 0, `the ${N} retry copies expired`, 30_000);
    await sleep(3 * CONFIRM_TIMEOUT_MS);
    return counts(retry);
  }

  it('work queue deleted: the expired retry copies stay in the quorum retry queue; every one arrives once the work queue is declared again', async () => {
    const { work, retry, topology } = await declare('quorum');
    await onChannel((ch) => ch.deleteQueue(work.name));
    const ids = await publishRetries(retry.name);
    expect(await expiredAndHeld(retry.name)).toEqual({ messages: N, ready: 0 }); // held, not dropped

    const t = new AmqpTransport({ url: rabbit.url, logger: silentLogger });
    await t.declare(topology).finally(() => t.close());
    await waitUntil(() => counts(work.name)?.messages === N, `the ${N} dead letters in the restored work queue`, 60_000);
    await waitUntil(() => counts(retry.name)?.messages === 0, 'the retry queue empty', 30_000);
    const r = tally(ids, await readIds(work.name));
    process.stdout.write(`quorum, target deleted then restored: ${N} dead-lettered, lost ${r.lost}, duplicates ${r.duplicates}\n`);
    expect(r).toEqual({ lost: 0, duplicates: 0, foreign: 0 });
  }, 120_000);

  it('work queue full (max-length policy, reject-publish): the copies wait in the retry queue; every one arrives once there is room', async () => {
    const { work, retry } = await declare('quorum');
    let ids: string[] = [];
    rabbit.ctl(['set_policy', `${prefix}-full`, `^${work.name.replace(/\./g, '\\.')}$`, '{"max-length":0}', '--apply-to', 'queues']);
    try {
      // The policy is in force once a publish into the work queue is rejected.
      await waitUntil(
        async () => {
          const ch = await conn.createConfirmChannel();
          ch.on('error', () => undefined);
          const ok = await new Promise<boolean>((res) => ch.publish('', work.name, Buffer.from('probe'), { messageId: 'probe' }, (err) => res(!err)));
          await ch.close().catch(() => undefined);
          return !ok;
        },
        'the max-length policy applied to the work queue',
        30_000,
      );
      await onChannel((ch) => ch.purgeQueue(work.name)); // a probe that went in before the policy did
      ids = await publishRetries(retry.name);
      const held = (await expiredAndHeld(retry.name))!;
      // A quorum queue enforces its limit a little late (its leader learns it is full after some writes):
      // copies it let in past the limit are in the work queue, the rest are held; none is gone.
      const admitted = counts(work.name)!.messages;
      process.stdout.write(`quorum, target full: ${N} dead-lettered, ${held.messages} held back, ${admitted} admitted past max-length 0\n`);
      expect(held.ready).toBe(0);
      expect(held.messages).toBeGreaterThan(0);
      expect(held.messages + admitted).toBe(N);
    } finally {
      // Room again: the limit raised (on RabbitMQ 3.10.8 clearing the policy did not lift the limit within 60 s here).
      rabbit.ctl(['set_policy', `${prefix}-full`, `^${work.name.replace(/\./g, '\\.')}$`, '{"max-length":1000000}', '--apply-to', 'queues']);
    }
    await waitUntil(() => counts(work.name)?.messages === N, `the ${N} dead letters in the work queue`, 60_000);
    await waitUntil(() => counts(retry.name)?.messages === 0, 'the retry queue empty', 30_000);
    expect(tally(ids, await readIds(work.name))).toEqual({ lost: 0, duplicates: 0, foreign: 0 });
  }, 120_000);

  it('for comparison, classic queues (at most once): the copies that expire while the work queue is deleted are gone', async () => {
    const { work, retry, topology } = await declare('classic');
    await onChannel((ch) => ch.deleteQueue(work.name));
    const ids = await publishRetries(retry.name);
    await waitUntil(() => counts(retry.name)?.messages === 0, `the ${N} retry copies expired`, 30_000);
    const t = new AmqpTransport({ url: rabbit.url, logger: silentLogger });
    await t.declare(topology).finally(() => t.close());
    await sleep(3 * CONFIRM_TIMEOUT_MS);
    const r = tally(ids, await readIds(work.name));
    process.stdout.write(`classic, target deleted then restored: ${N} dead-lettered, lost ${r.lost}\n`);
    expect(r.lost).toBe(N);
  }, 120_000);
});
