import { z } from 'zod';
import type { DataSource } from 'typeorm';
import { ContextStore } from '../context/ContextStore';
import { ConsumerRunnerOptions, defaultConsumerRunnerOptions, resolveConsumerRunnerOptions } from '../consumer/ConsumerRunnerOptions';
import { ConfigurationError } from '../errors';
import { LogLevel, Logger } from '../logging/Logger';
import { Transport } from '../transport/Transport';
import { ProducerOptions, defaultProducerOptions } from '../outbox/MessageProducer';
import { DispatcherOptions, defaultDispatcherOptions } from '../relay/Dispatcher';
import { RelayOptions, defaultRelayOptions } from '../relay/Relay';
import { BackoffOptions, defaultBackoffOptions } from '../relay/backoff';
import type { TxLogOptions } from '../txlog/TxLogSender';
import { defaultJourneyWriterOptions } from '../journey/BufferedJourneyRecorder';
import { checkBusinessKeyPaths } from '../journey/businessKey';
import { AlertOptions, defaultAlertOptions } from '../runtime/HealthAlerts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const dataSourceSchema = z.custom<DataSource>(
  (v) => isObject(v) && isObject(v.options) && typeof v.createQueryRunner === 'function',
  { message: 'must be a TypeORM DataSource' },
);
const transportSchema = z.custom<Transport>((v) => isObject(v) && typeof v.publish === 'function' && typeof v.subscribe === 'function', {
  message: 'must be "memory" or an object implementing Transport',
});
const contextSchema = z.custom<ContextStore>((v) => isObject(v) && typeof v.run === 'function' && typeof v.get === 'function', {
  message: 'must be "async-local-storage", "cls-hooked" or a ContextStore',
});
const loggerSchema = z.custom<Logger>((v) => isObject(v) && typeof v.info === 'function' && typeof v.error === 'function', {
  message: 'must be a log level or a Logger',
});
const ms = z.number().int().nonnegative();

const backoffSchema = z.strictObject({
  initialDelayMs: ms.optional(),
  maxDelayMs: ms.optional(),
  factor: z.number().min(1).optional(),
  jitter: z.number().min(0).max(1).optional(),
});

const schema = z.strictObject({
  dataSource: dataSourceSchema,
  /** Name under which decorators find this instance (`@Transactional({ dataSource: name })`). */
  name: z.string().min(1).optional(),
  transport: z.union([z.literal('memory'), transportSchema]).optional(),
  context: z.union([z.literal('async-local-storage'), z.literal('cls-hooked'), contextSchema]).optional(),
  /** Run the schema migration on start (default true). */
  migrate: z.boolean().optional(),
  instanceId: z.string().min(1).max(64).optional(),
  logger: z.union([z.enum(['debug', 'info', 'warn', 'error', 'silent']), loggerSchema]).optional(),
  /** OpenTelemetry spans and W3C trace headers: 'auto' (default) when @opentelemetry/api is installed, true (it must be), false (off). */
  tracing: z.union([z.boolean(), z.literal('auto')]).optional(),
  /** The recorded message journey (tmm_journey; src/journey): off by default. */
  journey: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Dotted payload paths whose first value found is stored as the message's business key (searchable). */
      businessKeys: z.array(z.string().min(1).max(200)).max(10).optional(),
      retentionMs: z.number().int().min(1).optional(),
      purgeIntervalMs: ms.optional(),
      maxBuffered: z.number().int().min(1).max(10_000_000).optional(),
      batchSize: z.number().int().min(1).max(10_000).optional(),
      flushIntervalMs: ms.min(1).max(60_000).optional(),
    })
    .optional(),
  producer: z
    .strictObject({
      defaultExchange: z.string().min(1).max(255).optional(),
      maxPayloadBytes: z.number().int().positive().optional(),
      requireTransaction: z.boolean().optional(),
      leaseMs: ms.min(1000).optional(),
    })
    .optional(),
  dispatcher: z
    .strictObject({
      concurrency: z.number().int().min(1).max(10_000).optional(),
      markBatchSize: z.number().int().min(1).max(5000).optional(),
      markLingerMs: ms.max(10_000).optional(),
      deleteDelivered: z.boolean().optional(),
      delayHorizonMs: ms.optional(),
      maxAttempts: z.number().int().min(1).optional(),
      backoff: backoffSchema.optional(),
      /** Most rows waiting in the fast path's queue; past it rows are left to the sweeper (default 10,000). */
      maxQueuedRows: z.number().int().min(1).optional(),
    })
    .optional(),
  relay: z
    .strictObject({
      /** Run the sweeper in this process (default true). */
      enabled: z.boolean().optional(),
      pollIntervalMs: ms.min(10).optional(),
      batchSize: z.number().int().min(1).max(10_000).optional(),
      /** Most rows held at once (claimed, not yet settled); the next batch is claimed while earlier ones publish. Default 3 × batchSize. */
      maxPendingRows: z.number().int().min(1).max(1_000_000).optional(),
      leaseMs: ms.min(1000).optional(),
      retentionMs: ms.optional(),
      shutdownTimeoutMs: ms.optional(),
    })
    .optional(),
  /** Where transactional messages go unless a @TransactionalMessage chooses: `outbox` (default) or `log` (needs `txlog`). */
  sender: z.enum(['outbox', 'log']).optional(),
  /** The local transaction-log sender (src/txlog/TxLogSender.ts, TxLogOptions); checked there. */
  txlog: z.custom<TxLogOptions>((v) => isObject(v), { message: 'must be an object with { directories }' }).optional(),
  sqlite: z.strictObject({ busyTimeoutMs: ms.optional() }).optional(),
  /** PostgreSQL (node-postgres): COMMIT in the same round trip as the outbox INSERT (ADR 0078; default true). */
  postgres: z.strictObject({ pipelineCommit: z.boolean().optional() }).optional(),
  /** Thresholds of the alerts in health() (src/runtime/HealthAlerts.ts); null switches one off. */
  alerts: z
    .strictObject({
      backlogAgeMs: ms.nullable().optional(),
      outboxDeadRows: z.number().int().nonnegative().nullable().optional(),
      deadLetterRate: z.strictObject({ max: z.number().int().nonnegative(), windowMs: ms.min(1000) }).nullable().optional(),
      consumerStallMs: ms.nullable().optional(),
      failHealth: z.boolean().optional(),
    })
    .optional(),
  /** Defaults for @Consumer handlers and the consumer runner (src/consumer/ConsumerRunnerOptions.ts). */
  consumers: z
    .strictObject({
      /** Start the consumers found at start-up in this process (default true). */
      enabled: z.boolean().optional(),
      prefetch: z.number().int().min(1).max(65_535).optional(),
      concurrency: z.number().int().min(1).max(65_535).optional(),
      messagesPerTransaction: z.number().int().min(1).max(1000).optional(),
      queueType: z.enum(['classic', 'quorum']).optional(),
      retry: z
        .strictObject({
          maxAttempts: z.number().int().min(1).max(100).optional(),
          delays: z.array(z.number().int().min(1).max(2 ** 31 - 1)).min(1).optional(),
          backoff: z
            .strictObject({
              initialDelayMs: z.number().int().min(1).optional(),
              factor: z.number().min(1).optional(),
              maxDelayMs: z.number().int().min(1).max(2 ** 31 - 1).optional(),
            })
            .optional(),
        })
        .optional(),
      shutdownTimeoutMs: ms.optional(),
      /** Header naming foreign messages' topic (docs/interop.md). */
      topicHeader: z.string().min(1).max(255).optional(),
      recoveryFailureDelayMs: ms.optional(),
      maxStackLength: z.number().int().min(100).max(64_000).optional(),
      inbox: z
        .strictObject({
          retentionMs: z.number().int().min(1).optional(),
          purgeIntervalMs: ms.optional(),
        })
        .optional(),
    })
    .optional()
    .superRefine((c, ctx) => {
      if (c?.concurrency !== undefined && c.concurrency > (c.prefetch ?? defaultConsumerRunnerOptions.prefetch)) {
        ctx.addIssue({ code: 'custom', path: ['concurrency'], message: `must not exceed prefetch (${c.prefetch ?? defaultConsumerRunnerOptions.prefetch}): no more than prefetch messages are in hand` });
      }
      const b = c?.retry?.backoff;
      if (b?.initialDelayMs !== undefined && b.maxDelayMs !== undefined && b.maxDelayMs < b.initialDelayMs) {
        ctx.addIssue({ code: 'custom', path: ['retry', 'backoff', 'maxDelayMs'], message: 'must be at least initialDelayMs' });
      }
    }),
});

export type TmmOptions = z.input<typeof schema>;
// (sender: 'log' without txlog is refused in validateTmmOptions)
export type { LogLevel };

/**
 * Validates user options. Unknown keys and wrong types throw ConfigurationError naming the full path
 * (`producer.maxPayloadBytes`); the first problem is in the message, all of them in `details`.
 */
export function validateTmmOptions(input: unknown): TmmOptions {
  if (!isObject(input)) throw new ConfigurationError('', 'options must be an object with at least { dataSource }');
  const result = schema.safeParse(input);
  if (result.success) {
    if (result.data.journey?.businessKeys) checkBusinessKeyPaths(result.data.journey.businessKeys);
    if (result.data.sender === 'log' && !result.data.txlog) throw new ConfigurationError('sender', '"log" needs the txlog option ({ directories })');
    return result.data;
  }
  const issues = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const base = issue.path.map(String);
      return { path: [...base, issue.keys[0]].join('.'), detail: `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}` };
    }
    const path = issue.path.map(String).join('.');
    let value: unknown = input;
    for (const key of issue.path) value = isObject(value) ? value[String(key)] : undefined;
    const missing = value === undefined;
    return { path, detail: missing ? 'is required' : issue.message };
  });
  const first = issues[0];
  const error = new ConfigurationError(first.path, first.detail + (issues.length > 1 ? ` (and ${issues.length - 1} more problem(s): ${issues.slice(1).map((i) => `${i.path}: ${i.detail}`).join('; ')})` : ''));
  throw error;
}


/**
 * The complete options of one tmm instance: every default filled in (in this one function), frozen.
 * `Tmm.options` exposes it read-only. Components receive their section of it.
 */
export interface ResolvedTmmOptions {
  readonly dataSource: DataSource;
  readonly name: string;
  /** undefined until the Tmm picks one (hostname-pid-random). */
  readonly instanceId: string | undefined;
  readonly transport: 'memory' | Transport;
  readonly context: 'async-local-storage' | 'cls-hooked' | ContextStore;
  readonly logger: LogLevel | Logger;
  readonly migrate: boolean;
  /** Where transactional messages go unless a @TransactionalMessage chooses. */
  readonly sender: 'outbox' | 'log';
  /** The transaction-log sender's options (checked by TxLogSender), when configured. */
  readonly txlog: TxLogOptions | undefined;
  readonly tracing: boolean | 'auto';
  readonly journey: Readonly<{
    enabled: boolean;
    businessKeys: readonly string[];
    retentionMs: number;
    purgeIntervalMs: number;
    maxBuffered: number;
    batchSize: number;
    flushIntervalMs: number;
  }>;
  readonly producer: Readonly<Omit<ProducerOptions, 'owner'>>;
  readonly dispatcher: Readonly<Omit<DispatcherOptions, 'owner' | 'logger' | 'backoff'> & { backoff: Readonly<BackoffOptions> }>;
  readonly relay: Readonly<Omit<RelayOptions, 'owner' | 'logger' | 'maxPendingRows'> & { enabled: boolean; maxPendingRows: number }>;
  readonly sqlite: Readonly<{ busyTimeoutMs: number | undefined }>;
  readonly postgres: Readonly<{ pipelineCommit: boolean }>;
  readonly consumers: Readonly<ConsumerRunnerOptions>;
  readonly alerts: Readonly<AlertOptions>;
}

/** Drops keys whose value is undefined, so an explicit `undefined` never overrides a default. */
function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) {
      // The DataSource, transport, logger and context are the app's live objects: never frozen.
      if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) deepFreeze(v);
      else if (Array.isArray(v)) deepFreeze(v);
    }
  }
  return o;
}

/** Validates (validateTmmOptions) and resolves: the one place where tmm's defaults are applied. */
export function resolveTmmOptions(input: TmmOptions): ResolvedTmmOptions {
  const o = validateTmmOptions(input);
  const relay = { ...defaultRelayOptions, enabled: true, ...defined(o.relay) };
  const { logger: _relayLogger, ...relayRest } = relay;
  const { logger: _dispatcherLogger, backoff: _b, ...dispatcherDefaults } = defaultDispatcherOptions;
  const resolved: ResolvedTmmOptions = {
    dataSource: o.dataSource,
    name: o.name ?? 'default',
    instanceId: o.instanceId,
    transport: o.transport ?? 'memory',
    context: o.context ?? 'async-local-storage',
    logger: o.logger ?? 'warn',
    migrate: o.migrate ?? true,
    sender: o.sender ?? 'outbox',
    txlog: o.txlog,
    tracing: o.tracing ?? false,
    journey: { enabled: false, businessKeys: [], ...defaultJourneyWriterOptions, ...defined(o.journey) },
    producer: { ...defaultProducerOptions, ...defined(o.producer) },
    dispatcher: {
      ...dispatcherDefaults,
      ...defined(o.dispatcher),
      backoff: { ...defaultBackoffOptions, ...defined(o.dispatcher?.backoff) },
    },
    relay: { ...relayRest, maxPendingRows: Math.max(relay.maxPendingRows ?? 3 * relay.batchSize, relay.batchSize) },
    sqlite: { busyTimeoutMs: o.sqlite?.busyTimeoutMs },
    postgres: { pipelineCommit: o.postgres?.pipelineCommit ?? true },
    consumers: resolveConsumerRunnerOptions(o.consumers as Parameters<typeof resolveConsumerRunnerOptions>[0]),
    alerts: { ...defaultAlertOptions, ...defined(o.alerts) },
  };
  return deepFreeze(resolved);
}
