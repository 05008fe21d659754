import { ConsumerDefinitionError } from '../errors';
import type { ContractClass } from '../message/MessageContracts';
import {
  type ConsumerMetadata,
  getConsumerMetadata,
  getConsumerMethods,
  getContractMetadata,
  getIdempotencyKeyMetadata,
  getIdempotentMetadata,
  getInterceptorsMetadata,
  getParamTypes,
} from '../metadata';
import type { ConsumeInterceptor } from './ConsumeContext';
import type { ConsumerDefinition } from './ConsumerDefinition';
import { type ConsumerRunnerOptions, retryDelays } from './ConsumerRunnerOptions';
import type { ConsumerSource } from './ConsumerSource';

export interface ExploreOptions {
  /** The tmm instance exploring: consumers bound to another (`dataSource` option) are left to it. */
  tmmName: string;
  defaults: ConsumerRunnerOptions;
  /** Exchange of contracts that name none (`producer.defaultExchange`). */
  defaultExchange: string;
}

/**
 * Reads the @Consumer metadata of the objects the sources give, once, and turns each consumer method into
 * a ConsumerDefinition: defaults applied, the message parameter checked to be a @MessageContract class,
 * interceptors instantiated. Throws ConsumerDefinitionError naming the consumer for anything wrong.
 */
export function exploreConsumers(sources: readonly ConsumerSource[], options: ExploreOptions): ConsumerDefinition[] {
  const seen = new Set<object>();
  const out: ConsumerDefinition[] = [];
  const interceptorCache = new Map<Function, ConsumeInterceptor>();
  for (const source of sources) {
    for (const instance of source.instances()) {
      if (instance === null || typeof instance !== 'object' || seen.has(instance)) continue;
      seen.add(instance);
      const type = instance.constructor;
      for (const method of getConsumerMethods(type)) {
        const meta = getConsumerMetadata(type.prototype as object, method);
        if (!meta) continue;
        if (source.explicit && meta.dataSource !== undefined && meta.dataSource !== options.tmmName) {
          throw new ConsumerDefinitionError(
            `${type.name}.${String(method)} (queue "${meta.queue}")`,
            `was registered with tmm instance "${options.tmmName}" but names dataSource "${meta.dataSource}"`,
          );
        }
        if (!source.explicit && (meta.dataSource ?? 'default') !== options.tmmName) continue;
        const resolveInterceptor = (ref: unknown, consumer: string): ConsumeInterceptor => {
          if (typeof ref !== 'function') return ref as ConsumeInterceptor;
          let built = interceptorCache.get(ref);
          if (!built) {
            let fromSource: unknown;
            for (const s of sources) {
              fromSource = s.resolve?.(ref);
              if (fromSource !== undefined) break;
            }
            try {
              built = (fromSource ?? new (ref as new () => ConsumeInterceptor)()) as ConsumeInterceptor;
            } catch (e) {
              throw new ConsumerDefinitionError(consumer, `interceptor ${ref.name} could not be constructed (${(e as Error).message}); bind it in the container`);
            }
            if (typeof built?.intercept !== 'function') throw new ConsumerDefinitionError(consumer, `interceptor ${ref.name} has no intercept() method`);
            interceptorCache.set(ref, built);
          }
          return built;
        };
        out.push(define(instance, type, method, meta, options, resolveInterceptor));
      }
    }
  }
  return out;
}

function define(
  instance: object,
  type: Function,
  methodKey: string | symbol,
  meta: ConsumerMetadata,
  o: ExploreOptions,
  resolveInterceptor: (ref: unknown, consumer: string) => ConsumeInterceptor,
): ConsumerDefinition {
  const method = String(methodKey);
  const name = `${type.name}.${method}`;
  const where = `${name} (queue "${meta.queue}")`;
  const proto = type.prototype as object;
  if (typeof (instance as Record<string | symbol, unknown>)[methodKey] !== 'function') {
    throw new ConsumerDefinitionError(where, `${method} is not a method of the instance`);
  }
  const params = getParamTypes(proto, methodKey);
  if (!params) {
    throw new ConsumerDefinitionError(
      where,
      'no parameter types were emitted for the handler: compile with "emitDecoratorMetadata": true (and experimentalDecorators) so tmm can read the message contract',
    );
  }
  if (params.length < 1 || params.length > 2) {
    throw new ConsumerDefinitionError(where, `the handler must take (message: SomeContract, context?: ConsumeContext), it takes ${params.length} parameter(s)`);
  }
  const contract = params[0] as ContractClass | undefined;
  const contractMeta = typeof contract === 'function' ? getContractMetadata(contract) : undefined;
  if (!contract || !contractMeta) {
    const got = typeof contract === 'function' ? contract.name : String(contract);
    throw new ConsumerDefinitionError(
      where,
      `the message parameter's type must be a class decorated with @MessageContract, got ${got}` +
        (got === 'Object' ? ' (an interface, a type alias or a class declared after the consumer all read as Object)' : ''),
    );
  }

  const d = o.defaults;
  const idempotentMark = getIdempotentMetadata(proto, methodKey);
  if (meta.idempotent === false && idempotentMark) throw new ConsumerDefinitionError(where, 'has @Idempotent() and idempotent: false');
  const idempotent = meta.idempotent ?? idempotentMark;
  const transactional = meta.transactional ?? true;
  if (idempotent && !transactional) {
    throw new ConsumerDefinitionError(where, 'an idempotent consumer needs its transaction (the inbox claim commits with the handler’s writes): drop transactional: false');
  }

  const ordered = meta.ordered ?? false;
  const prefetch = ordered ? 1 : (meta.prefetch ?? d.prefetch);
  const concurrency = ordered ? 1 : (meta.concurrency ?? Math.min(d.concurrency ?? prefetch, prefetch));
  if (concurrency > prefetch) throw new ConsumerDefinitionError(where, `concurrency ${concurrency} is above prefetch ${prefetch}: no more than prefetch messages can be in hand`);

  const perTransaction = meta.messagesPerTransaction ?? Math.min(d.messagesPerTransaction, concurrency);
  if (perTransaction > concurrency) {
    throw new ConsumerDefinitionError(where, `messagesPerTransaction ${perTransaction} is above concurrency ${concurrency}: a transaction groups deliveries being handled`);
  }
  if (perTransaction > 1 && !transactional) throw new ConsumerDefinitionError(where, 'messagesPerTransaction needs a transactional consumer');

  let maxAttempts: number;
  let delays: number[];
  if (meta.retry === false) {
    maxAttempts = 1;
    delays = [];
  } else {
    const r = meta.retry ?? {};
    const explicit = r.delays ?? (r.backoff ? undefined : d.retry.delays);
    maxAttempts = r.maxAttempts ?? (r.delays ? r.delays.length + 1 : d.retry.maxAttempts);
    delays = retryDelays(maxAttempts, explicit, { ...d.retry.backoff, ...r.backoff });
  }

  const exchange = meta.exchange ?? contractMeta.exchange ?? o.defaultExchange;
  const routingKey = meta.routingKey ?? meta.topic ?? contractMeta.topic;
  const interceptors = [...getInterceptorsMetadata(type), ...getInterceptorsMetadata(proto, methodKey)].map((ref) => resolveInterceptor(ref, where));

  return {
    name,
    instance,
    type,
    method,
    contract,
    queue: meta.queue,
    binding: { exchange, routingKey },
    prefetch,
    concurrency,
    maxAttempts,
    delays,
    deadLetterQueue: meta.deadLetter ?? `${meta.queue}.dlq`,
    ttl: meta.ttl,
    ordered,
    idempotent,
    idempotencyKey: idempotent ? getIdempotencyKeyMetadata(proto, methodKey) : undefined,
    topicHeader: meta.topicHeader ?? d.topicHeader,
    contractTopic: contractMeta.topic,
    transactional,
    messagesPerTransaction: perTransaction,
    queueType: meta.queueType ?? d.queueType,
    interceptors,
  };
}
