import { ConfigurationError } from '../../errors';
import { ConsoleLogger, type Logger } from '../../logging/Logger';

export interface NatsTransportOptions {
  /** `nats://host:port` (or several, comma-separated); credentials in the URL are masked in logs. */
  servers: string;
  /**
   * First token of every subject and stream name tmm uses on this server (`tmm.q.<queue>`, stream
   * `TMM_Q_<queue>`): two tmm deployments on one server stay apart with different prefixes. Letters,
   * digits, `_` and `-`.
   */
  prefix: string;
  /** How long publish() waits for the PubAck once the message is sent (and, before, for a connection and a slot). */
  publishTimeoutMs: number;
  /** How long connecting may take before declare()/subscribe()/publish() fail. */
  connectTimeoutMs: number;
  /** Publishes awaiting their PubAck at once; further publish() calls wait for a slot. */
  maxInFlight: number;
  /**
   * JetStream duplicate window of the queue streams: a second publish with the same message id inside it
   * is acknowledged but not stored again.
   */
  duplicateWindowMs: number;
  /**
   * Ack wait of the durable consumers: an unsettled delivery of a process that died is redelivered after
   * this long. Live subscriptions extend it for deliveries still in hand (`working()`).
   */
  ackWaitMs: number;
  /** Lease of a single-active-consumer queue: a dead holder is replaced after at most this long. */
  leaseMs: number;
  /** Reconnect wait between attempts (the client retries forever until close()). */
  reconnectTimeWaitMs: number;
  /** Client pings: a stalled server is detected after about `pingIntervalMs · maxPingOut`. */
  pingIntervalMs: number;
  maxPingOut: number;
  logger: Logger;
  /** Shown by the server (`/connz`). */
  connectionName: string;
}

export type NatsTransportOptionsInput = Partial<NatsTransportOptions>;

export const defaultNatsTransportOptions: Readonly<NatsTransportOptions> = Object.freeze({
  servers: 'nats://127.0.0.1:4222',
  prefix: 'tmm',
  publishTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxInFlight: 256,
  duplicateWindowMs: 120_000,
  ackWaitMs: 30_000,
  leaseMs: 5_000,
  reconnectTimeWaitMs: 250,
  pingIntervalMs: 10_000,
  maxPingOut: 2,
  logger: new ConsoleLogger('info'),
  connectionName: 'tmm',
});

const KEYS = new Set(Object.keys(defaultNatsTransportOptions));

/** Defaults, then validation: unknown keys and out-of-range values throw ConfigurationError naming the option. */
export function resolveNatsTransportOptions(input: NatsTransportOptionsInput = {}): NatsTransportOptions {
  if (input === null || typeof input !== 'object') throw new ConfigurationError('', 'NATS transport options must be an object');
  for (const key of Object.keys(input)) if (!KEYS.has(key)) throw new ConfigurationError(key, 'unknown option');
  const o: NatsTransportOptions = { ...defaultNatsTransportOptions, ...(Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<NatsTransportOptions>) };
  if (typeof o.servers !== 'string' || o.servers.split(',').some((s) => !/^(nats|tls):\/\/[^\s]+$/.test(s.trim()))) {
    throw new ConfigurationError('servers', 'must be nats:// (or tls://) URLs, comma-separated');
  }
  if (typeof o.prefix !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(o.prefix)) {
    throw new ConfigurationError('prefix', `must be 1-32 letters, digits, "_" or "-", got ${JSON.stringify(o.prefix)}`);
  }
  int(o.publishTimeoutMs, 'publishTimeoutMs', 1);
  int(o.connectTimeoutMs, 'connectTimeoutMs', 1);
  int(o.maxInFlight, 'maxInFlight', 1);
  int(o.duplicateWindowMs, 'duplicateWindowMs', 1_000);
  int(o.ackWaitMs, 'ackWaitMs', 1_000);
  int(o.leaseMs, 'leaseMs', 300);
  int(o.reconnectTimeWaitMs, 'reconnectTimeWaitMs', 0);
  int(o.pingIntervalMs, 'pingIntervalMs', 100);
  int(o.maxPingOut, 'maxPingOut', 1);
  const logger = o.logger as Partial<Logger> | null;
  if (!logger || typeof logger.info !== 'function' || typeof logger.warn !== 'function' || typeof logger.error !== 'function' || typeof logger.debug !== 'function') {
    throw new ConfigurationError('logger', 'must implement Logger (debug, info, warn, error)');
  }
  if (typeof o.connectionName !== 'string' || o.connectionName.length === 0) throw new ConfigurationError('connectionName', 'must be a non-empty string');
  return o;
}

function int(v: unknown, path: string, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigurationError(path, `must be an integer ≥ ${min}, got ${String(v)}`);
}
