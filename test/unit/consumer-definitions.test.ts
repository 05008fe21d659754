/**
 * @Consumer, @Idempotent and @UseInterceptors check their arguments when the class is defined; the
 * explorer and the registry check what only start-up can see (the message type, queues shared between
 * consumers, retries outliving the inbox). No IO here: exploring reads metadata only.
 */
import { IsString } from 'class-validator';
import {
  ConfigurationError,
  type ConsumeContext,
  type ConsumeInterceptor,
  ConsumerDefinitionError,
  ConsumerRegistry,
  type ConsumerDefinition,
  consumerTopology,
  exploreConsumers,
  getConsumerClasses,
  resolveConsumerRunnerOptions,
  retryDelays,
  workQueueSpec,
} from '../../src/internal';
import { Consumer, Idempotent, MessageContract, UseInterceptors } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';

const defaults = resolveConsumerRunnerOptions();
const explore = (instances: object[], over: Partial<Parameters<typeof exploreConsumers>[1]> = {}) =>
  exploreConsumers([{ instances: () => instances, explicit: true }], { tmmName: 'default', defaults, defaultExchange: 'tmm.events', ...over });

/** Defines a class with one consumer method decorated with these options (so each test gets a fresh one). */
function consumerWith(options: Parameters<typeof Consumer>[0]): object {
  class Handler {
    @Consumer(options)
    async handle(_m: LedgerPosted, _ctx: ConsumeContext): Promise<void> {}
  }
  return new Handler();
}

@MessageContract({ topic: 'parcel.shipped', exchange: 'logistics' })
class ParcelShipped {
  @IsString() parcelId!: string;
}

describe('@Consumer checks its options when the class is defined', () => {
  const cases: [string, unknown, string][] = [
    ['no queue', {}, 'Consumer.queue'],
    ['an empty queue', { queue: '' }, 'Consumer.queue'],
    ['a reserved queue name', { queue: 'amq.mine' }, 'Consumer.queue'],
    ['an unknown option', { queue: 'q', prefetchCount: 3 }, 'Consumer.prefetchCount'],
    ['topic and routingKey together', { queue: 'q', topic: 'a.b', routingKey: 'a.b' }, 'Consumer.routingKey'],
    ['an exchange without a routing key', { queue: 'q', exchange: 'x' }, 'Consumer.routingKey'],
    ['a topic that is not a binding key', { queue: 'q', topic: 'a..b' }, 'Consumer.topic'],
    ['prefetch 0', { queue: 'q', prefetch: 0 }, 'Consumer.prefetch'],
    ['a fractional concurrency', { queue: 'q', concurrency: 1.5 }, 'Consumer.concurrency'],
    ['concurrency above prefetch', { queue: 'q', prefetch: 2, concurrency: 3 }, 'Consumer.concurrency'],
    ['retry: true', { queue: 'q', retry: true }, 'Consumer.retry'],
    ['an unknown retry option', { queue: 'q', retry: { attempts: 3 } }, 'Consumer.retry.attempts'],
    ['maxAttempts 0', { queue: 'q', retry: { maxAttempts: 0 } }, 'Consumer.retry.maxAttempts'],
    ['a negative delay', { queue: 'q', retry: { delays: [100, -1] } }, 'Consumer.retry.delays.1'],
    ['delays and backoff together', { queue: 'q', retry: { delays: [1], backoff: { initialDelayMs: 1 } } }, 'Consumer.retry.backoff'],
    ['a backoff factor below 1', { queue: 'q', retry: { backoff: { factor: 0.5 } } }, 'Consumer.retry.backoff.factor'],
    ['maxDelayMs below initialDelayMs', { queue: 'q', retry: { backoff: { initialDelayMs: 500, maxDelayMs: 100 } } }, 'Consumer.retry.backoff.maxDelayMs'],
    ['a dead-letter queue equal to the queue', { queue: 'q', deadLetter: 'q' }, 'Consumer.deadLetter'],
    ['ttl 0', { queue: 'q', ttl: 0 }, 'Consumer.ttl'],
    ['ordered with prefetch 10', { queue: 'q', ordered: true, prefetch: 10 }, 'Consumer.ordered'],
    ['idempotent without a transaction', { queue: 'q', idempotent: true, transactional: false }, 'Consumer.transactional'],
    ['a quorum typo', { queue: 'q', queueType: 'quorom' }, 'Consumer.queueType'],
    ['messagesPerTransaction above prefetch', { queue: 'q', prefetch: 4, messagesPerTransaction: 8 }, 'Consumer.messagesPerTransaction'],
  ];
  it.each(cases)('refuses %s with a ConfigurationError naming the option', (_what, options, path) => {
    let error: unknown;
    try {
      Consumer(options as Parameters<typeof Consumer>[0]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).path).toBe(path);
  });

  it('refuses a second @Consumer on the same method, and a property', () => {
    expect(() => {
      class Twice {
        @Consumer({ queue: 'a' })
        @Consumer({ queue: 'b' })
        async handle(_m: LedgerPosted): Promise<void> {}
      }
      return Twice;
    }).toThrow(/has @Consumer twice/);
    const decorate = Consumer({ queue: 'p' });
    expect(() => decorate({}, 'field', { value: 42 })).toThrow(/can only decorate methods/);
  });

  it('records the class so the container scan can find it', () => {
    const instance = consumerWith({ queue: 'recorded' });
    expect(getConsumerClasses()).toContain(instance.constructor);
  });

  it('@UseInterceptors refuses something that is not an interceptor', () => {
    expect(() => UseInterceptors({} as ConsumeInterceptor)).toThrow(ConfigurationError);
    expect(() => UseInterceptors(class NotOne {} as never)).toThrow(/UseInterceptors.0/);
    expect(() => UseInterceptors()).toThrow(/at least one/);
  });
});

describe('retry delays', () => {
  it('grow exponentially from the backoff, capped, one fewer than the attempts', () => {
    expect(retryDelays(5, undefined, { initialDelayMs: 1000, factor: 2, maxDelayMs: 5000 })).toEqual([1000, 2000, 4000, 5000]);
    expect(retryDelays(1, undefined, { initialDelayMs: 1000, factor: 2, maxDelayMs: 5000 })).toEqual([]);
  });

  it('take explicit delays in order and repeat the last one', () => {
    expect(retryDelays(5, [100, 300], defaults.retry.backoff)).toEqual([100, 300, 300, 300]);
  });
});

describe('exploring consumers at start-up', () => {
  it('applies the defaults: the contract’s topic and exchange, <queue>.dlq, delays from the backoff', () => {
    class Shipping {
      @Consumer({ queue: 'shipping.parcels' })
      async onShipped(_m: ParcelShipped): Promise<void> {}
    }
    const [d] = explore([new Shipping()]);
    expect(d).toMatchObject({
      name: 'Shipping.onShipped',
      contract: ParcelShipped,
      queue: 'shipping.parcels',
      binding: { exchange: 'logistics', routingKey: 'parcel.shipped' },
      prefetch: 16,
      concurrency: 16,
      maxAttempts: 5,
      delays: [1000, 2000, 4000, 8000],
      deadLetterQueue: 'shipping.parcels.dlq',
      idempotent: false,
      transactional: true,
      ordered: false,
      messagesPerTransaction: 1,
      queueType: 'classic',
    });
    // Retry queues expire back into the work queue; the work queue dead-letters into the DLQ.
    expect(consumerTopology(d).queues.map((q) => q.name)).toEqual([
      'shipping.parcels.dlq',
      'shipping.parcels.retry.1000ms',
      'shipping.parcels.retry.2000ms',
      'shipping.parcels.retry.4000ms',
      'shipping.parcels.retry.8000ms',
      'shipping.parcels',
    ]);
    expect(consumerTopology(d).queues[1]).toMatchObject({ messageTtl: 1000, deadLetterExchange: '', deadLetterRoutingKey: 'shipping.parcels' });
    expect(workQueueSpec(d)).toMatchObject({ deadLetterExchange: '', deadLetterRoutingKey: 'shipping.parcels.dlq' });
  });

  it('ordered: single active consumer, prefetch 1, no retry queues (retries wait in place)', () => {
    const [d] = explore([consumerWith({ queue: 'ordered.q', ordered: true })]);
    expect(d).toMatchObject({ prefetch: 1, concurrency: 1, ordered: true });
    expect(workQueueSpec(d).singleActiveConsumer).toBe(true);
    expect(consumerTopology(d).queues.map((q) => q.name)).toEqual(['ordered.q.dlq', 'ordered.q']);
  });

  it('@Idempotent() and idempotent: true mean the same; together with idempotent: false they conflict', () => {
    class A {
      @Idempotent()
      @Consumer({ queue: 'a' })
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    class B {
      @Consumer({ queue: 'b' })
      @Idempotent()
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    expect(explore([new A(), new B()]).map((d) => d.idempotent)).toEqual([true, true]);
    class C {
      @Consumer({ queue: 'c', idempotent: false })
      @Idempotent()
      async handle(_m: LedgerPosted): Promise<void> {}
    }
    expect(() => explore([new C()])).toThrow(/has @Idempotent\(\) and idempotent: false/);
  });

  it('refuses a handler whose message parameter is not a @MessageContract class, naming the consumer', () => {
    class NotAContract {
      id!: string;
    }
    class Wrong {
      @Consumer({ queue: 'wrong' })
      async handle(_m: NotAContract): Promise<void> {}
    }
    interface Shape {
      id: string;
    }
    class Untyped {
      @Consumer({ queue: 'untyped' })
      async handle(_m: Shape): Promise<void> {}
    }
    class TooMany {
      @Consumer({ queue: 'many' })
      async handle(_m: LedgerPosted, _c: ConsumeContext, _x: string): Promise<void> {}
    }
    expect(() => explore([new Wrong()])).toThrow(ConsumerDefinitionError);
    expect(() => explore([new Wrong()])).toThrow(/Wrong\.handle \(queue "wrong"\).*must be a class decorated with @MessageContract, got NotAContract/);
    expect(() => explore([new Untyped()])).toThrow(/got Object \(an interface/);
    expect(() => explore([new TooMany()])).toThrow(/takes 3 parameter/);
  });

  it('takes consumers of its own tmm instance from discovered sources, and refuses a mismatch given by hand', () => {
    const mine = consumerWith({ queue: 'mine' });
    const other = consumerWith({ queue: 'other', dataSource: 'reporting' });
    const discovered = exploreConsumers([{ instances: () => [mine, other] }], { tmmName: 'default', defaults, defaultExchange: 'tmm.events' });
    expect(discovered.map((d) => d.queue)).toEqual(['mine']);
    expect(() => explore([other])).toThrow(/registered with tmm instance "default" but names dataSource "reporting"/);
  });

  it('builds class-level interceptors before method-level ones, each in the order given, once per class', () => {
    const order: string[] = [];
    class Tag implements ConsumeInterceptor {
      static built = 0;
      constructor() {
        Tag.built++;
      }
      async intercept(_c: unknown, next: () => Promise<unknown>) {
        order.push('tag');
        return next();
      }
    }
    const outer: ConsumeInterceptor = { intercept: (_c, next) => next() };
    const inner: ConsumeInterceptor = { intercept: (_c, next) => next() };
    @UseInterceptors(outer, Tag)
    class Intercepted {
      @UseInterceptors(inner)
      @Consumer({ queue: 'i1' })
      async one(_m: LedgerPosted): Promise<void> {}
      @Consumer({ queue: 'i2' })
      async two(_m: LedgerPosted): Promise<void> {}
    }
    const [one, two] = explore([new Intercepted()]);
    expect(one.interceptors[0]).toBe(outer);
    expect(one.interceptors[1]).toBeInstanceOf(Tag);
    expect(one.interceptors[2]).toBe(inner);
    expect(two.interceptors).toHaveLength(2);
    expect(two.interceptors[1]).toBe(one.interceptors[1]);
    expect(Tag.built).toBe(1);
  });
});

describe('the registry checks consumers together', () => {
  const defs = (...instances: object[]): ConsumerDefinition[] => explore(instances);

  it('refuses two consumers on one queue, listing how their options differ', () => {
    const a = consumerWith({ queue: 'shared', prefetch: 4 });
    const b = consumerWith({ queue: 'shared', prefetch: 8, ttl: 60_000 });
    expect(() => new ConsumerRegistry(defs(a, b), defaults.inbox.retentionMs)).toThrow(
      /queue "shared" is also consumed by Handler\.handle with different options \(prefetch 4 vs 8; concurrency 4 vs 8; ttl undefined vs 60000\)/,
    );
    // Same options are still two handlers competing for one queue's messages.
    expect(() => new ConsumerRegistry(defs(consumerWith({ queue: 'twin' }), consumerWith({ queue: 'twin' })), defaults.inbox.retentionMs)).toThrow(
      /one queue, one handler/,
    );
  });

  it('refuses a work queue that is another consumer’s dead-letter queue', () => {
    const a = consumerWith({ queue: 'orders' });
    const b = consumerWith({ queue: 'orders.dlq' });
    expect(() => new ConsumerRegistry(defs(a, b), defaults.inbox.retentionMs)).toThrow(/its dead-letter queue "orders\.dlq" is also the work queue of Handler\.handle/);
  });

  it('refuses an idempotent consumer whose retries outlive the inbox retention', () => {
    const slow = consumerWith({ queue: 'slow', idempotent: true, retry: { delays: [60_000, 600_000] } });
    expect(() => new ConsumerRegistry(defs(slow), 300_000)).toThrow(/retries span 660000 ms, not less than consumers\.inbox\.retentionMs \(300000 ms\)/);
    expect(() => new ConsumerRegistry(defs(slow), 7 * 24 * 3600_000)).not.toThrow();
  });
});
