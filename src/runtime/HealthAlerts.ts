import type { ConsumerActivity } from '../consumer/ConsumerRunner';

/** Thresholds of the alerts in tmm.health() (`alerts` option); null switches an alert off. */
export interface AlertOptions {
  /**
   * Fires when the oldest undelivered outbox row has waited longer than this: since it became due, or, once
   * a publish of it failed (which moves its due time on), since it was created.
   */
  backlogAgeMs: number | null;
  /** Fires when more than this many outbox rows are DEAD (failed every publish attempt). */
  outboxDeadRows: number | null;
  /** Fires when this process's consumers dead-lettered more than `max` messages within the last `windowMs`. */
  deadLetterRate: { max: number; windowMs: number } | null;
  /**
   * A consumer has no heartbeat when its subscription is down (not consuming: stopped, cancelled, or its
   * channel or connection lost), or when it holds deliveries but settled none for this long (a hung handler).
   */
  consumerStallMs: number | null;
  /** Let firing alerts make health() not ok (and the admin's /health answer 503). Default false: alerts are data, not a readiness failure. */
  failHealth: boolean;
}

export const defaultAlertOptions: AlertOptions = {
  backlogAgeMs: 300_000,
  outboxDeadRows: 0,
  deadLetterRate: { max: 10, windowMs: 60_000 },
  consumerStallMs: 60_000,
  failHealth: false,
};

/** One alert: `value` against `threshold` (null when switched off or not measurable now). */
export interface TmmAlert {
  firing: boolean;
  value: number | null;
  threshold: number | null;
  detail?: string;
}

/** A consumer's heartbeat, as the consumerHeartbeat alert sees it. */
export interface ConsumerHeartbeat {
  consumer: string;
  queue: string;
  subscribed: boolean;
  inHand: number;
  /** Last delivery received or settled (epoch ms), null when none since start. */
  lastActivityAt: number | null;
  /** How long it has held deliveries without settling one (ms), 0 when it holds none. */
  stalledMs: number;
  ok: boolean;
}

export interface TmmAlerts {
  backlogAge: TmmAlert;
  outboxDead: TmmAlert;
  deadLetterRate: TmmAlert & { windowMs: number | null };
  consumerHeartbeat: TmmAlert & { consumers: ConsumerHeartbeat[] };
}

/**
 * How much a cumulative counter grew within a trailing window, from samples taken every `everyMs`
 * (the window's edge is accurate to one sample interval). Keeps samples covering the window only.
 */
export class CounterWindow {
  private readonly samples: { at: number; value: number }[] = [];

  constructor(
    readonly windowMs: number,
    private readonly read: () => number,
  ) {}

  /** How often to sample for this window: a fifth of it, between 100 ms and 5 s. */
  get everyMs(): number {
    return Math.min(5000, Math.max(100, Math.floor(this.windowMs / 5)));
  }

  sample(now = Date.now()): void {
    this.samples.push({ at: now, value: this.read() });
    // Keep the newest sample at or before the window's start, and everything after it.
    while (this.samples.length > 1 && this.samples[1].at <= now - this.windowMs) this.samples.shift();
  }

  /** The increase over the window up to now (over the samples there are, when younger than the window). */
  increase(now = Date.now()): number {
    const current = this.read();
    let base = this.samples[0];
    for (const s of this.samples) if (s.at <= now - this.windowMs) base = s;
    return base === undefined ? 0 : Math.max(0, current - base.value);
  }
}

/** The heartbeat of each consumer expected to run: those declared, matched with what is subscribed now. */
export function consumerHeartbeats(expected: readonly { name: string; queue: string }[], activity: readonly ConsumerActivity[], stallMs: number | null, now = Date.now()): ConsumerHeartbeat[] {
  return expected.map((d) => {
    const a = activity.find((x) => x.consumer === d.name);
    if (!a) return { consumer: d.name, queue: d.queue, subscribed: false, inHand: 0, lastActivityAt: null, stalledMs: 0, ok: false };
    const last = Math.max(a.lastDeliveryAt ?? 0, a.lastSettledAt ?? 0);
    const stalledMs = a.inHand > 0 && a.busySince !== null ? now - Math.max(a.lastSettledAt ?? 0, a.busySince) : 0;
    return {
      consumer: a.consumer,
      queue: a.queue,
      subscribed: a.subscribed,
      inHand: a.inHand,
      lastActivityAt: last === 0 ? null : last,
      stalledMs,
      ok: a.subscribed && (stallMs === null || stalledMs <= stallMs),
    };
  });
}

/** An alert that compares a value with a threshold (fires above it); off when the threshold is null. */
export function thresholdAlert(value: number | null, threshold: number | null, detail?: string): TmmAlert {
  const firing = threshold !== null && value !== null && value > threshold;
  return { firing, value, threshold, ...(firing && detail ? { detail } : {}) };
}
