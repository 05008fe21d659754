import { ConfigurationError } from '../../errors';
import { ConsoleLogger, type Logger } from '../../logging/Logger';
import { type CloudEventsBinding, validateAmqpWireOptions } from './amqpProperties';

/** Reconnect backoff: delay n = min(initialDelayMs · factor^(n-1), cap) ± jitter, never above maxDelayMs. */
export interface AmqpReconnectOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  /** ≥ 1. */
  factor: number;
  /** 0..1, the fraction of the delay randomised either way. */
  jitter: number;
}

export interface AmqpTransportOptions {
  /** `amqp[s]://user:password@host:port/vhost`; logged only with the password masked. */
  url: string;
  /** Heartbeat interval in seconds (0 disables); a silent broker is detected after about two intervals. */
  heartbeat: number;
  /**
   * How long publish() waits for its confirm once the message is sent. Before sending, it waits at most
   * as long for a connection, an in-flight slot and the write buffer to drain.
   */
  confirmTimeoutMs: number;
  /** How long one connection attempt may take, and how long declare()/subscribe() wait for a connection. */
  connectTimeoutMs: number;
  /** How long close() waits for the broker to acknowledge closing channels and the connection. */
  closeTimeoutMs: number;
  /** Publishes awaiting their confirm at once; further publish() calls wait for a slot. */
  maxInFlight: number;
  reconnect: AmqpReconnectOptions;
  logger: Logger;
  /** Shown in the management UI and in `rabbitmqctl list_connections client_properties`. */
  connectionName: string;
  /** AMQP `app_id` of the messages published (the service name); default: connectionName. */
  appId?: string;
  /** Opt-in CloudEvents binary-mode attributes on every publish (amqpProperties.ts, docs/wire-format.md). */
  cloudEvents?: CloudEventsBinding;
}

/** What the AmqpTransport constructor accepts: any subset of the options, nested ones too. */
export type AmqpTransportOptionsInput = Partial<Omit<AmqpTransportOptions, 'reconnect'>> & { reconnect?: Partial<AmqpReconnectOptions> };

export const defaultAmqpTransportOptions: Readonly<AmqpTransportOptions> = Object.freeze({
  url: 'amqp://guest:guest@127.0.0.1:5672',
  heartbeat: 10,
  confirmTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 5_000,
  maxInFlight: 256,
  reconnect: Object.freeze({ initialDelayMs: 100, maxDelayMs: 30_000, factor: 2, jitter: 0.2 }),
  logger: new ConsoleLogger('info'),
  connectionName: 'tmm',
  appId: undefined,
  cloudEvents: undefined,
});

const RECONNECT_KEYS = ['initialDelayMs', 'maxDelayMs', 'factor', 'jitter'] as const;
const KEYS = new Set<string>(Object.keys(defaultAmqpTransportOptions));

/**
 * Defaults, then validation: unknown keys and out-of-range values throw ConfigurationError naming the
 * option path relative to the AMQP transport options (`reconnect.factor`).
 */
export function resolveAmqpTransportOptions(input: AmqpTransportOptionsInput = {}): AmqpTransportOptions {
  if (input === null || typeof input !== 'object') throw new ConfigurationError('', 'AMQP transport options must be an object');
  for (const key of Object.keys(input)) if (!KEYS.has(key)) throw new ConfigurationError(key, 'unknown option');
  const reconnectInput: Record<string, unknown> = input.reconnect ?? {};
  if (reconnectInput === null || typeof reconnectInput !== 'object') throw new ConfigurationError('reconnect', 'must be an object');
  for (const key of Object.keys(reconnectInput)) {
    if (!(RECONNECT_KEYS as readonly string[]).includes(key)) throw new ConfigurationError(`reconnect.${key}`, 'unknown option');
  }
  const d = defaultAmqpTransportOptions;
  const o: AmqpTransportOptions = {
    ...d,
    ...stripUndefined(input),
    reconnect: { ...d.reconnect, ...stripUndefined(input.reconnect ?? {}) },
  };

  if (typeof o.url !== 'string' || !/^amqps?:\/\//.test(o.url)) throw new ConfigurationError('url', 'must be an amqp:// or amqps:// URL');
  try {
    new URL(o.url);
  } catch {
    throw new ConfigurationError('url', 'is not a valid URL');
  }
  int(o.heartbeat, 'heartbeat', 0);
  int(o.confirmTimeoutMs, 'confirmTimeoutMs', 1);
  int(o.connectTimeoutMs, 'connectTimeoutMs', 1);
  int(o.closeTimeoutMs, 'closeTimeoutMs', 0);
  int(o.maxInFlight, 'maxInFlight', 1);
  int(o.reconnect.initialDelayMs, 'reconnect.initialDelayMs', 0);
  int(o.reconnect.maxDelayMs, 'reconnect.maxDelayMs', o.reconnect.initialDelayMs);
  num(o.reconnect.factor, 'reconnect.factor', 1, Infinity);
  num(o.reconnect.jitter, 'reconnect.jitter', 0, 1);
  const logger = o.logger as Partial<Logger> | null;
  if (!logger || typeof logger.info !== 'function' || typeof logger.warn !== 'function' || typeof logger.error !== 'function' || typeof logger.debug !== 'function') {
    throw new ConfigurationError('logger', 'must implement Logger (debug, info, warn, error)');
  }
  if (typeof o.connectionName !== 'string' || o.connectionName.length === 0) throw new ConfigurationError('connectionName', 'must be a non-empty string');
  validateAmqpWireOptions(o.appId, o.cloudEvents);
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function int(v: unknown, path: string, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigurationError(path, `must be an integer ≥ ${min}, got ${String(v)}`);
}

function num(v: unknown, path: string, min: number, max: number): void {
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || v > max) {
    throw new ConfigurationError(path, `must be a number in [${min}, ${max}], got ${String(v)}`);
  }
}
