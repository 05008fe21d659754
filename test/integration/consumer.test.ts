/**
 * The consumer pipeline on the in-memory transport and SQLite (what users run their own tests on):
 * discovery from the inversify container, the ConsumeContext, interceptors, the async context across
 * await/timers/emitters, ordered consumers, start-up misconfigurations and the shutdown timeout.
 * Broker behaviour (retry queues, dead letters, TTL, crashes) is in consumer-broker/consumer-crash.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Container, inject, injectable } from 'inversify';
import {
  ConfigurationError,
  type ConsumeContext,
  type ConsumeInterceptor,
  ConsumerDefinitionError,
  type InterceptionContext,
  MemoryTransport,
  NonRetryableError,
  PublishError,
  TMM,
  type Tmm,
  TmmRegistry,
  TopologyError,
  createTmmModule,
} from '../../src/internal';
import { Consumer, UseInterceptors } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { ConsumerTestEnv, QueueReader, RecordingLogger, sleep, uniquePrefix, waitUntil, wireMessage } from '../support/consumers';
import { LedgerEntry } from '../support/entities';

let env: ConsumerTestEnv;
let prefix: string;

beforeAll(async () => {
  env = await ConsumerTestEnv.create('sqlite', 'memory', [LedgerEntry]);
});
afterAll(async () => env?.dispose());
beforeEach(() => {
  prefix = uniquePrefix('cp');
});
afterEach(async () => env.cleanup());

const entry = (entryId: string, amount = 10) => ({ entryId, amount, currency: 'EUR' });
const rows = (messageId: string) => env.db.dataSource.getRepository(LedgerEntry).countBy({ account: messageId });

describe('discovery from the inversify container', () => {
  it('starts the consumers of classes bound in the container, with their interceptors resolved there; warns about unbound ones', async () => {
    const Greeting = Symbol('greeting');
    @injectable()
    class Stamp implements ConsumeInterceptor {
      constructor(@inject(Greeting) readonly greeting: string) {}
      async intercept(ctx: InterceptionContext, next: () => Promise<unknown>) {
        received.push(`${this.greeting} ${(ctx.message as LedgerPosted).entryId}`);
        return next();
      }
    }
    const received: string[] = [];
    @injectable()
    @UseInterceptors(Stamp)
    class Bound {
      @Consumer({ queue: `${prefix}.bound`, exchange: prefix, routingKey: 'work' })
      async handle(e: LedgerPosted): Promise<void> {
        received.push(`handled ${e.entryId}`);
      }
    }
    class NeverBound {
      @Consumer({ queue: `${prefix}.unbound`, exchange: prefix, routingKey: 'work' })
      async handle(_e: LedgerPosted): Promise<void> {}
    }
    @injectable()
    class OtherInstance {
      @Consumer({ queue: `${prefix}.other`, exchange: prefix, routingKey: 'work', dataSource: 'reporting' })
      async handle(_e: LedgerPosted): Promise<void> {}
    }
    void NeverBound;
    const transport = new MemoryTransport();
    const logger = new RecordingLogger();
    const container = new Container();
    await container.load(createTmmModule({ dataSource: env.db.dataSource, transport, logger, relay: { enabled: false } }));
    container.bind(Greeting).toConstantValue('hello');
    container.bind(Stamp).toSelf().inSingletonScope();
    container.bind(Bound).toSelf().inSingletonScope();
    container.bind(OtherInstance).toSelf();
    const tmm = container.get<Tmm>(TMM.Tmm);
    try {
      await tmm.start();
      // Only this instance's consumers: Bound (OtherInstance belongs to the "reporting" tmm instance).
      expect(tmm.consumers.definitions.map((d) => d.name)).toEqual(['Bound.handle']);
      expect(container.get(TMM.ConsumerRunner)).toBe(tmm.consumers);
      expect(logger.lines.some((l) => l.level === 'warn' && l.fields?.class === 'NeverBound')).toBe(true);
      await transport.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('di-1') }));
      await waitUntil(() => tmm.consumers.stats.handled === 1, 'the bound consumer to handle it');
      expect(received).toEqual(['hello di-1', 'handled di-1']);
    } finally {
      await tmm.stop();
    }
  });
});

describe('the pipeline', () => {
  it('hands the handler its message and a ConsumeContext bound to the handler’s transaction', async () => {
    let seen: { message: LedgerPosted; ctx: Omit<ConsumeContext, 'manager'>; inTransaction: boolean } | undefined;
    class Inspect {
      @Consumer({ queue: `${prefix}.ctx`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 4, delays: [10] } })
      async handle(message: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        const { manager, ...rest } = ctx;
        seen = { message, ctx: { ...rest }, inTransaction: manager.queryRunner?.isTransactionActive === true };
      }
    }
    const t = env.transport();
    await env.start([new Inspect()], {}, t);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: { ...entry('ctx-1'), extra: 'a newer producer added this' }, headers: { 'tmm-contract-version': 2, 'x-tenant': 't-9' } });
    await t.publish(m);
    await waitUntil(() => seen !== undefined, 'the handler');
    expect(seen!.message).toBeInstanceOf(LedgerPosted);
    // Unknown properties are stripped (tolerant reader), not refused.
    expect({ ...seen!.message }).toEqual(entry('ctx-1'));
    expect(seen!.ctx).toMatchObject({
      messageId: m.id,
      consumer: 'Inspect.handle',
      queue: `${prefix}.ctx`,
      exchange: prefix,
      routingKey: 'work',
      attempt: 1,
      maxAttempts: 4,
      redelivered: false,
      timestamp: m.timestamp,
    });
    expect(seen!.ctx.headers['x-tenant']).toBe('t-9');
    expect(seen!.inTransaction).toBe(true);
  });

  it('runs class-level then method-level interceptors inside the transaction, after the claim; duplicates skip them', async () => {
    const trail: string[] = [];
    const interceptor = (name: string): ConsumeInterceptor => ({
      async intercept(ctx, next) {
        trail.push(`${name}:before:${ctx.manager.queryRunner?.isTransactionActive === true}`);
        const result = await next();
        trail.push(`${name}:after`);
        return result;
      },
    });
    @UseInterceptors(interceptor('class-a'), interceptor('class-b'))
    class Traced {
      @UseInterceptors(interceptor('method'))
      @Consumer({ queue: `${prefix}.traced`, exchange: prefix, routingKey: 'work', idempotent: true })
      async handle(_m: LedgerPosted): Promise<void> {
        trail.push('handler');
      }
    }
    const t = env.transport();
    const tmm = await env.start([new Traced()], {}, t);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: entry('i-1') });
    await t.publish(m);
    await t.publish({ ...m });
    await waitUntil(() => tmm.consumers.stats.handled + tmm.consumers.stats.duplicates === 2, 'both copies');
    expect(trail).toEqual(['class-a:before:true', 'class-b:before:true', 'method:before:true', 'handler', 'method:after', 'class-b:after', 'class-a:after']);
  });

  it('an interceptor that throws fails the attempt like the handler would; NonRetryableError from it dead-letters', async () => {
    let attempts = 0;
    const gate: ConsumeInterceptor = {
      async intercept(ctx, next) {
        attempts++;
        if ((ctx.message as LedgerPosted).entryId === 'refuse') throw new NonRetryableError('tenant is suspended');
        if (ctx.attempt === 1) throw new Error('rate limited');
        return next();
      },
    };
    class Guarded {
      handled: string[] = [];
      @UseInterceptors(gate)
      @Consumer({ queue: `${prefix}.guarded`, exchange: prefix, routingKey: 'work', retry: { delays: [20] } })
      async handle(m: LedgerPosted): Promise<void> {
        this.handled.push(m.entryId);
      }
    }
    const handler = new Guarded();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('pass') }));
    await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('refuse') }));
    await waitUntil(() => tmm.consumers.stats.handled === 1 && tmm.consumers.stats.deadLettered === 1, 'one handled, one dead-lettered');
    expect(handler.handled).toEqual(['pass']);
    expect(attempts).toBe(3);
  });

  it('keeps the handler’s transaction across await, timers and event emitters: a message sent from a timer joins it', async () => {
    const holder: { tmm?: Tmm } = {};
    const seen: Record<string, boolean> = {};
    class Async {
      @Consumer({ queue: `${prefix}.async`, exchange: prefix, routingKey: 'work', retry: false })
      async handle(m: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        const tx = holder.tmm!.transactions;
        const mine = tx.current();
        await sleep(5);
        seen.afterAwait = tx.current() === mine && mine !== undefined;
        await new Promise<void>((resolve, reject) =>
          setTimeout(() => {
            seen.inTimer = tx.current() === mine;
            // Sent from a timer callback: must still be collected into the handler's transaction.
            holder.tmm!.producer.send(LedgerPosted.of(`out-${m.entryId}`, m.amount), { exchange: prefix, routingKey: 'out' }).then(() => resolve(), reject);
          }, 5),
        );
        const emitter = new EventEmitter();
        const viaEmitter = new Promise<boolean>((resolve) => emitter.once('ping', () => resolve(tx.current() === mine)));
        setImmediate(() => emitter.emit('ping'));
        seen.inEmitter = await viaEmitter;
        await ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: ctx.messageId, amount: m.amount });
        if (m.entryId === 'rollback') throw new Error('rolled back after sending');
      }
    }
    const t = env.transport();
    const out = { name: `${prefix}.out`, bindings: [{ exchange: prefix, routingKey: 'out' }] };
    const tmm = await env.start([new Async()], {}, t);
    holder.tmm = tmm;
    const reader = await QueueReader.start(t, out);
    await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('commit') }));
    await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('rollback') }));
    await waitUntil(() => tmm.consumers.stats.handled === 1 && tmm.consumers.stats.deadLettered === 1, 'both settled');
    await tmm.dispatcher.idle();
    await sleep(50);
    expect(seen).toEqual({ afterAwait: true, inTimer: true, inEmitter: true });
    expect(reader.deliveries.map((d) => (JSON.parse(d.message.body.toString()) as LedgerPosted).entryId)).toEqual(['out-commit']);
    await reader.stop();
  });

  it('transactional: false runs the handler without a transaction (a send then opens its own)', async () => {
    let inTransaction: boolean | undefined;
    class Plain {
      @Consumer({ queue: `${prefix}.plain`, exchange: prefix, routingKey: 'work', transactional: false })
      async handle(_m: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        inTransaction = ctx.manager.queryRunner?.isTransactionActive === true;
      }
    }
    const t = env.transport();
    const tmm = await env.start([new Plain()], {}, t);
    await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('p') }));
    await waitUntil(() => tmm.consumers.stats.handled === 1, 'handled');
    expect(inTransaction).toBe(false);
  });

  it('a retry copy the broker refuses does not lose the message: it goes back to its queue and is retried later', async () => {
    /** The in-memory transport, refusing the first publish to a retry queue (as a broker in trouble would). */
    class FakeRefusingTransport extends MemoryTransport {
      refused = 0;
      override async publish(message: Parameters<MemoryTransport['publish']>[0]): Promise<void> {
        if (message.routingKey.includes('.retry.') && this.refused === 0) {
          this.refused++;
          throw new PublishError('TMM_PUBLISH_NACKED', `refused ${message.id}`);
        }
        return super.publish(message);
      }
    }
    class Unlucky {
      readonly calls: { attempt: number; redelivered: boolean }[] = [];
      @Consumer({ queue: `${prefix}.unlucky`, exchange: prefix, routingKey: 'work', retry: { delays: [20] } })
      async handle(_m: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        this.calls.push({ attempt: ctx.attempt, redelivered: ctx.redelivered });
        if (this.calls.length < 3) throw new Error('failing');
      }
    }
    const handler = new Unlucky();
    const t = new FakeRefusingTransport();
    const tmm = await env.start([handler], { consumers: { recoveryFailureDelayMs: 30 } }, t);
    await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry('u') }));
    await waitUntil(() => tmm.consumers.stats.handled === 1, 'the message to be handled in the end');
    // 1st: fails, its retry copy is refused ⇒ given back; 2nd (a redelivery, still attempt 1): fails, copy
    // published; 3rd: the retry copy, attempt 2, succeeds.
    expect(handler.calls).toEqual([
      { attempt: 1, redelivered: false },
      { attempt: 1, redelivered: true },
      { attempt: 2, redelivered: false },
    ]);
    expect(t.refused).toBe(1);
    expect(tmm.consumers.stats).toMatchObject({ requeued: 1, retried: 1, handled: 1 });
    await t.close();
  });

  it('an idempotent consumer dead-letters a message without a message id, which it could not deduplicate', async () => {
    class Dedup {
      calls = 0;
      @Consumer({ queue: `${prefix}.noid`, exchange: prefix, routingKey: 'work', idempotent: true })
      async handle(_m: LedgerPosted): Promise<void> {
        this.calls++;
      }
    }
    const handler = new Dedup();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    const reader = await QueueReader.start(t, { name: `${prefix}.noid.dlq`, type: 'classic' });
    await t.publish(wireMessage({ id: '', exchange: prefix, routingKey: 'work', body: entry('anonymous') }));
    const [dead] = await reader.waitFor(1, 'the dead-letter queue');
    expect(dead.message.headers['tmm-dead-letter-reason']).toBe('missing-message-id');
    expect(handler.calls).toBe(0);
    expect(tmm.consumers.stats.deadLettered).toBe(1);
    await reader.stop();
  });

  it('ordered: retries wait in place, so later messages never overtake a failing one', async () => {
    class Sequence {
      readonly order: string[] = [];
      failures = 0;
      @Consumer({ queue: `${prefix}.ordered`, exchange: prefix, routingKey: 'work', ordered: true, retry: { delays: [30, 60] } })
      async handle(m: LedgerPosted): Promise<void> {
        if (m.entryId === 's-1' && this.failures < 2) {
          this.failures++;
          throw new Error('not yet');
        }
        this.order.push(m.entryId);
      }
    }
    const handler = new Sequence();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    for (const id of ['s-0', 's-1', 's-2', 's-3']) await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: entry(id) }));
    await waitUntil(() => handler.order.length === 4, 'all four handled');
    expect(handler.order).toEqual(['s-0', 's-1', 's-2', 's-3']);
    expect(tmm.consumers.stats).toMatchObject({ handled: 4, retried: 0 });
  });

  it('stop() gives up on a handler after shutdownTimeoutMs: it is rolled back when it returns, nothing committed', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    let started = false;
    class Slow {
      @Consumer({ queue: `${prefix}.slow`, exchange: prefix, routingKey: 'work' })
      async handle(m: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        await ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: ctx.messageId, amount: m.amount });
        started = true;
        await stuck;
      }
    }
    const t = env.transport();
    const tmm = await env.start([new Slow()], { consumers: { shutdownTimeoutMs: 100 } }, t);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: entry('slow') });
    await t.publish(m);
    await waitUntil(() => started, 'the handler to start');
    const t0 = Date.now();
    await tmm.consumers.stop();
    expect(Date.now() - t0).toBeLessThan(2000);
    release();
    await waitUntil(() => tmm.consumers.stats.abandoned === 1, 'the abandoned handler to return');
    expect(await rows(m.id)).toBe(0);
    expect(tmm.consumers.stats.handled).toBe(0);
  });
});

describe('start-up misconfigurations fail with clear errors', () => {
  it('a handler whose parameter is not a contract fails Tmm.start, which leaves nothing running', async () => {
    class Payload {
      entryId!: string;
    }
    class Wrong {
      @Consumer({ queue: `${prefix}.wrong`, exchange: prefix, routingKey: 'work' })
      async handle(_p: Payload): Promise<void> {}
    }
    const name = `wrong-${prefix}`;
    let error: unknown;
    try {
      await env.start([new Wrong()], { name, relay: { enabled: true } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConsumerDefinitionError);
    expect((error as Error).message).toMatch(/consumer Wrong\.handle \(queue "tmm-cp-[0-9a-f]+\.wrong"\): the message parameter's type must be a class decorated with @MessageContract, got Payload/);
    expect(TmmRegistry.find(name)).toBeUndefined();
  });

  it('two consumers on one queue fail start-up naming both', async () => {
    class First {
      @Consumer({ queue: `${prefix}.same`, exchange: prefix, routingKey: 'a', prefetch: 4 })
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    class Second {
      @Consumer({ queue: `${prefix}.same`, exchange: prefix, routingKey: 'b', prefetch: 4 })
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    await expect(env.start([new First(), new Second()])).rejects.toThrow(/Second\.handle .*is also consumed by First\.handle with different options \(binding .*\/a vs .*\/b\)/);
  });

  it('a queue that exists with other arguments fails start-up with a TopologyError naming it', async () => {
    class Expiring {
      @Consumer({ queue: `${prefix}.exists`, exchange: prefix, routingKey: 'work', ttl: 1000 })
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    const t = env.transport();
    await t.declare({ queues: [{ name: `${prefix}.exists`, messageTtl: 5000 }] });
    await expect(env.start([new Expiring()], {}, t)).rejects.toThrow(TopologyError);
    await expect(env.start([new Expiring()], {}, t)).rejects.toThrow(new RegExp(`queue "${prefix}\\.exists" already exists with different`));
  });

  it('an idempotent consumer whose retries outlive the inbox retention fails start-up', async () => {
    class Patient {
      @Consumer({ queue: `${prefix}.patient`, exchange: prefix, routingKey: 'work', idempotent: true, retry: { delays: [60_000] } })
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    await expect(env.start([new Patient()], { consumers: { inbox: { retentionMs: 30_000 } } })).rejects.toThrow(/retries span 60000 ms, not less than consumers\.inbox\.retentionMs/);
  });

  it('bad consumers options are refused when the module is created, naming the option', () => {
    const dataSource = env.db.dataSource;
    const attempt = (consumers: unknown) => {
      try {
        createTmmModule({ dataSource, consumers } as never);
      } catch (e) {
        return e as ConfigurationError;
      }
      throw new Error('no error');
    };
    expect(attempt({ prefetch: 0 }).path).toBe('consumers.prefetch');
    expect(attempt({ retries: 3 }).path).toBe('consumers.retries');
    expect(attempt({ retry: { backoff: { factor: 0 } } }).path).toBe('consumers.retry.backoff.factor');
    expect(attempt({ prefetch: 4, concurrency: 8 }).path).toBe('consumers.concurrency');
    expect(attempt({ queueType: 'lazy' }).path).toBe('consumers.queueType');
    expect(attempt({ inbox: { retentionMs: 0 } }).path).toBe('consumers.inbox.retentionMs');
  });
});
