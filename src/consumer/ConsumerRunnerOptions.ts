/** Exponential delays between attempts, without jitter: each distinct delay is one retry queue. */
export interface RetryBackoffOptions {
  initialDelayMs: number;
  /** ≥ 1. */
  factor: number;
  maxDelayMs: number;
}

export interface RetryOptions {
  /** Attempts in all, the first included; after the last failed one the message is dead-lettered. */
  maxAttempts: number;
  /** Explicit delays (ms) after the 1st, 2nd… failure; the last one repeats. Overrides `backoff`. */
  delays?: number[];
  backoff: RetryBackoffOptions;
}

export interface InboxOptions {
  /** Claims older than this are purged; must exceed every idempotent consumer's retry horizon. */
  retentionMs: number;
  /** How often this process purges old claims (0: never, e.g. when another process does it). */
  purgeIntervalMs: number;
}

/** The `consumers` section of the tmm options, with what each @Consumer inherits unless it says otherwise. */
export interface ConsumerRunnerOptions {
  /** Start the @Consumer handlers found at start-up in this process (default true). */
  enabled: boolean;
  /** Unsettled deliveries per consumer (AMQP prefetch). */
  prefetch: number;
  /** Handlers running at once per consumer; defaults to `prefetch`. */
  concurrency?: number;
  /**
   * Deliveries of a transactional consumer handled in one transaction (default 1). Above 1, deliveries in
   * hand are grouped (up to this many; a partial group waits at most 2 ms, and only while other groups
   * run) and run one after another in one transaction with one multi-row inbox claim, committed and acked
   * together; if any fails, the group is rolled back and each runs again alone. See
   * docs/adr/0010-consumer-transaction-batches.md.
   */
  messagesPerTransaction: number;
  /** Type of the queues tmm declares for consumers. */
  queueType: 'classic' | 'quorum';
  retry: RetryOptions;
  /** stop() waits this long for running handlers, then rolls back those still running. */
  shutdownTimeoutMs: number;
  /** When a retry or dead-letter copy cannot be published, wait this long before giving the message back. */
  recoveryFailureDelayMs: number;
  /** Characters of the error stack kept in the `tmm-error-stack` header of a dead letter. */
  maxStackLength: number;
  inbox: InboxOptions;
  /** Header that names foreign messages' topic (see ConsumerMetadata.topicHeader); default none. */
  topicHeader?: string;
}

export const defaultConsumerRunnerOptions: Readonly<ConsumerRunnerOptions> = Object.freeze({
  enabled: true,
  prefetch: 16,
  messagesPerTransaction: 1,
  queueType: 'classic',
  retry: Object.freeze({ maxAttempts: 5, backoff: Object.freeze({ initialDelayMs: 1000, factor: 2, maxDelayMs: 60_000 }) }),
  shutdownTimeoutMs: 10_000,
  recoveryFailureDelayMs: 1000,
  maxStackLength: 4000,
  inbox: Object.freeze({ retentionMs: 7 * 24 * 3600_000, purgeIntervalMs: 3600_000 }),
});

/** Deep input form: any subset, nested ones too. */
export type ConsumerRunnerOptionsInput = Partial<Omit<ConsumerRunnerOptions, 'retry' | 'inbox'>> & {
  retry?: Partial<Omit<RetryOptions, 'backoff'>> & { backoff?: Partial<RetryBackoffOptions> };
  inbox?: Partial<InboxOptions>;
};

/** Defaults merged under the (already validated) input. */
export function resolveConsumerRunnerOptions(input: ConsumerRunnerOptionsInput = {}): ConsumerRunnerOptions {
  const d = defaultConsumerRunnerOptions;
  const clean = <T extends object>(o: T | undefined): Partial<T> => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
  return {
    ...d,
    ...clean(input),
    retry: { ...d.retry, ...clean(input.retry), backoff: { ...d.retry.backoff, ...clean(input.retry?.backoff) } },
    inbox: { ...d.inbox, ...clean(input.inbox) },
  };
}

/**
 * The delay after each failed attempt but the last: `maxAttempts - 1` values. Explicit delays are used in
 * order (the last repeats); otherwise initialDelayMs · factor^(n-1), capped at maxDelayMs, rounded.
 */
export function retryDelays(maxAttempts: number, delays: number[] | undefined, backoff: RetryBackoffOptions): number[] {
  const out: number[] = [];
  for (let n = 1; n < maxAttempts; n++) {
    if (delays && delays.length > 0) out.push(delays[Math.min(n - 1, delays.length - 1)]);
    else out.push(Math.round(Math.min(backoff.maxDelayMs, backoff.initialDelayMs * Math.pow(backoff.factor, n - 1))));
  }
  return out;
}
