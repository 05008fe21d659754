import type { FingerprintFunction } from '../deadletter/errorFingerprint';
import { z } from 'zod';
import { ConfigurationError } from '../errors';
import type { Logger } from '../logging/Logger';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const principalName = z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'names are 1-64 letters, digits, _ . @ -');

const schema = z.strictObject({
  /** Address to listen on. Default 127.0.0.1: reachable from this machine only. */
  host: z.string().min(1).optional(),
  /** Port; 0 picks a free one (see TmmAdmin.url). */
  port: z.number().int().min(0).max(65_535).optional(),
  /**
   * Host names (without port) the server answers to, checked against every request's Host header; `'*'`
   * accepts any. Default: localhost, 127.0.0.1, ::1 and the `host` it listens on. Required when listening
   * on a wildcard address (0.0.0.0, ::). Guards against DNS rebinding: a web page whose name resolves to
   * this server gets 403 and reads nothing, not even the console.
   */
  allowedHosts: z.union([z.literal('*'), z.array(z.string().min(1).max(253).regex(/^[^\s/:@]+$|^\[[0-9A-Fa-f:.]+\]$|^[0-9A-Fa-f:.]+$/, 'a host name or address without port or path')).min(1)]).optional(),
  auth: z
    .strictObject({
      /** Bearer tokens by principal name: `{ ops: process.env.TMM_ADMIN_TOKEN }`; at least 16 characters. */
      tokens: z.record(principalName, z.string().min(16, 'must be at least 16 characters').max(512)).optional(),
      /** Basic-auth users and passwords; passwords at least 12 characters. */
      users: z.record(principalName, z.string().min(12, 'must be at least 12 characters').max(512)).optional(),
      /** Allow reading without credentials (no actions) — only on a loopback address. */
      anonymousLocalRead: z.boolean().optional(),
    })
    .optional(),
  /** No actions at all, whoever asks (resend, discard, retry are refused with 403). */
  readOnly: z.boolean().optional(),
  /** Largest request body; larger ones get 413 and change nothing. */
  bodyLimitBytes: z.number().int().min(1024).max(64 * 1024 * 1024).optional(),
  /** Most dead letters or rows one bulk action may touch. */
  maxBulk: z.number().int().min(1).max(1_000_000).optional(),
  collector: z
    .strictObject({
      /** Collect dead letters in this process (default true). */
      enabled: z.boolean().optional(),
      /** More dead-letter queues than the consumers' (`<queue>.dlq`) to collect from (declared as classic queues). */
      queues: z.array(z.string().min(1).max(255)).optional(),
      prefetch: z.number().int().min(1).max(10_000).optional(),
      retryDelayMs: z.number().int().min(0).max(600_000).optional(),
      /** The app's grouping of dead letters (FingerprintFunction); default tmm's errorFingerprint. */
      fingerprint: z.custom<FingerprintFunction>((v) => typeof v === 'function', { message: 'must be a function (input) => string' }).optional(),
    })
    .optional(),
  metrics: z
    .strictObject({
      /** Serve /metrics (default true). */
      enabled: z.boolean().optional(),
      /** How often the throughput chart's counters are sampled (default 10 s; the last 360 samples are kept). */
      sampleIntervalMs: z.number().int().min(100).max(3_600_000).optional(),
    })
    .optional(),
  /** Where the depths of the consumers' queues (work, retry, dead-letter) come from (docs/adr/0065). */
  queues: z
    .strictObject({
      /** 'amqp' (passive declares; default without `management`) or 'management' (default with it). */
      source: z.enum(['amqp', 'management']).optional(),
      /** The RabbitMQ management HTTP API: ready, unacked and consumers per queue in one request. */
      management: z
        .strictObject({
          url: z.string().regex(/^https?:\/\/[^\s]+$/, 'an http(s) URL such as http://rabbitmq:15672'),
          username: z.string().min(1).max(255),
          password: z.string().max(512),
          vhost: z.string().min(1).max(255).optional(),
          timeoutMs: z.number().int().min(100).max(60_000).optional(),
        })
        .optional(),
      /** How long one reading of the depths is reused (default 5 s). */
      cacheMs: z.number().int().min(0).max(600_000).optional(),
    })
    .optional()
    .superRefine((q, ctx) => {
      if (q?.source === 'management' && !q.management) ctx.addIssue({ code: 'custom', path: ['management'], message: 'required with source "management" (url, username, password)' });
    }),
  /** How long tmm_dead_letter and tmm_audit rows are kept (`tmm purge`, and purgeIntervalMs in this process); null keeps them. */
  retention: z
    .strictObject({
      /** RESENT and DISCARDED dead letters older than this (by status change) are deleted; NEW ones never. */
      deadLettersMs: z.number().int().min(60_000).nullable().optional(),
      auditMs: z.number().int().min(60_000).nullable().optional(),
      /** How often this process purges (0: never; the CLI's `tmm purge` then does it). Default 0. */
      purgeIntervalMs: z.number().int().min(0).optional(),
    })
    .optional(),
  logger: z.custom<Logger>((v) => isObject(v) && typeof v.info === 'function' && typeof v.error === 'function', { message: 'must be a Logger' }).optional(),
});

export type AdminOptions = z.input<typeof schema>;

/** AdminOptions with every default applied. */
export interface ResolvedAdminOptions {
  host: string;
  port: number;
  /** Lower-case host names without brackets or port, or '*' for any. */
  allowedHosts: string[] | '*';
  auth: { tokens: Record<string, string>; users: Record<string, string>; anonymousLocalRead: boolean };
  readOnly: boolean;
  bodyLimitBytes: number;
  maxBulk: number;
  collector: { enabled: boolean; queues: string[]; prefetch: number; retryDelayMs: number; fingerprint?: FingerprintFunction };
  metrics: { enabled: boolean; sampleIntervalMs: number };
  queues: { source: 'amqp' | 'management'; management?: { url: string; username: string; password: string; vhost: string; timeoutMs: number }; cacheMs: number };
  retention: { deadLettersMs: number | null; auditMs: number | null; purgeIntervalMs: number };
  logger?: Logger;
}

export const defaultAdminOptions: Omit<ResolvedAdminOptions, 'auth' | 'allowedHosts' | 'queues'> & { queues: { cacheMs: number; vhost: string; timeoutMs: number } } = {
  host: '127.0.0.1',
  port: 8089,
  readOnly: false,
  bodyLimitBytes: 1024 * 1024,
  maxBulk: 10_000,
  collector: { enabled: true, queues: [], prefetch: 32, retryDelayMs: 1000 },
  metrics: { enabled: true, sampleIntervalMs: 10_000 },
  queues: { cacheMs: 5000, vhost: '/', timeoutMs: 3000 },
  retention: { deadLettersMs: 30 * 86_400_000, auditMs: 365 * 86_400_000, purgeIntervalMs: 0 },
};

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** `Example.COM` → `example.com`, `[::1]` → `::1`. */
export function normalizeHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
}

/** The host name of a Host header value (`name:port`, `[v6]:port`, `name`), normalized; undefined when malformed. */
export function hostHeaderName(header: string | undefined): string | undefined {
  if (header === undefined || header.length === 0) return undefined;
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s/:@[\]]+)(?::\d{1,5})?$/.exec(header);
  return m ? normalizeHostName(m[1]) : undefined;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Defaults, then validation, then the safety rules: credentials are required (there is no default
 * password) unless `auth.anonymousLocalRead` is set, which only a loopback address may use. Throws
 * ConfigurationError naming the path (`admin.auth.tokens.ops`).
 */
export function resolveAdminOptions(input: unknown): ResolvedAdminOptions {
  if (!isObject(input)) throw new ConfigurationError('admin', 'options must be an object');
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = ['admin', ...issue.path.map(String), ...(issue.code === 'unrecognized_keys' ? [issue.keys[0]] : [])].join('.');
    throw new ConfigurationError(path, issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message);
  }
  const o = parsed.data;
  const d = defaultAdminOptions;
  const clean = <T extends object>(v: T | undefined): Partial<T> => Object.fromEntries(Object.entries(v ?? {}).filter(([, x]) => x !== undefined)) as Partial<T>;
  const resolved: ResolvedAdminOptions = {
    host: o.host ?? d.host,
    port: o.port ?? d.port,
    allowedHosts: o.allowedHosts === '*' ? '*' : [],
    auth: { tokens: o.auth?.tokens ?? {}, users: o.auth?.users ?? {}, anonymousLocalRead: o.auth?.anonymousLocalRead ?? false },
    readOnly: o.readOnly ?? d.readOnly,
    bodyLimitBytes: o.bodyLimitBytes ?? d.bodyLimitBytes,
    maxBulk: o.maxBulk ?? d.maxBulk,
    collector: { ...d.collector, ...clean(o.collector) },
    metrics: { ...d.metrics, ...clean(o.metrics) },
    queues: {
      source: o.queues?.source ?? (o.queues?.management ? 'management' : 'amqp'),
      ...(o.queues?.management
        ? { management: { ...o.queues.management, vhost: o.queues.management.vhost ?? d.queues.vhost, timeoutMs: o.queues.management.timeoutMs ?? d.queues.timeoutMs } }
        : {}),
      cacheMs: o.queues?.cacheMs ?? d.queues.cacheMs,
    },
    retention: { ...d.retention, ...clean(o.retention) },
    logger: o.logger,
  };
  const credentials = Object.keys(resolved.auth.tokens).length + Object.keys(resolved.auth.users).length;
  if (credentials === 0 && !resolved.auth.anonymousLocalRead) {
    throw new ConfigurationError(
      'admin.auth',
      'no credentials configured: give auth.tokens or auth.users (there is no default password), or set auth.anonymousLocalRead for a read-only console on a loopback address',
    );
  }
  if (resolved.auth.anonymousLocalRead && !isLoopback(resolved.host)) {
    throw new ConfigurationError('admin.auth.anonymousLocalRead', `only allowed on a loopback address, not on host "${resolved.host}"`);
  }
  if (o.allowedHosts !== '*') {
    if (o.allowedHosts === undefined && isWildcard(resolved.host)) {
      throw new ConfigurationError(
        'admin.allowedHosts',
        `required when listening on "${resolved.host}": list the host names clients use to reach the console (e.g. ["tmm-admin.internal"]), or '*' to accept any Host header`,
      );
    }
    const given = o.allowedHosts ?? ['localhost', '127.0.0.1', '::1', ...(isWildcard(resolved.host) ? [] : [resolved.host])];
    resolved.allowedHosts = [...new Set(given.map(normalizeHostName))];
  }
  return resolved;
}
