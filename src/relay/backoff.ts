export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  /** 0..1: the share of the delay that is randomized ("equal jitter" at 0.5, full jitter at 1). */
  jitter: number;
}

export const defaultBackoffOptions: BackoffOptions = { initialDelayMs: 1000, maxDelayMs: 5 * 60_000, factor: 2, jitter: 0.5 };

/** Delay before attempt `attempt + 1`, after `attempt` (≥ 1) failures: exponential, capped, jittered. */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(o.maxDelayMs, o.initialDelayMs * Math.pow(o.factor, Math.max(0, attempt - 1)));
  const jitter = Math.min(1, Math.max(0, o.jitter));
  return Math.round(exp * (1 - jitter) + exp * jitter * random());
}
