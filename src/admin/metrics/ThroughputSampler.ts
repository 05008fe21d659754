/** Cumulative counters of this process, read at each sample. */
export interface ThroughputCounters {
  published: number;
  publishFailed: number;
  consumed: number;
  retried: number;
  deadLettered: number;
  collected: number;
}

/** What happened between two samples. */
export interface ThroughputPoint extends ThroughputCounters {
  /** End of the interval, epoch ms. */
  at: number;
  intervalMs: number;
}

const ZERO: ThroughputCounters = { published: 0, publishFailed: 0, consumed: 0, retried: 0, deadLettered: 0, collected: 0 };

/**
 * Samples this process's counters every `intervalMs` and keeps the last `size` intervals: the series
 * behind the console's throughput chart and "delivered per minute". In-process only (each instance shows
 * its own); Prometheus has the same counters for a fleet-wide view.
 */
export class ThroughputSampler {
  private readonly points: ThroughputPoint[] = [];
  private last: ThroughputCounters | undefined;
  private lastAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => ThroughputCounters,
    private readonly intervalMs: number,
    private readonly size = 360,
  ) {}

  start(): void {
    if (this.timer) return;
    this.last = this.read();
    this.lastAt = Date.now();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes a sample now (also called by the timer). */
  sample(now = Date.now()): void {
    const current = this.read();
    const prev = this.last ?? ZERO;
    const point = { at: now, intervalMs: now - this.lastAt } as ThroughputPoint;
    for (const k of Object.keys(ZERO) as (keyof ThroughputCounters)[]) point[k] = Math.max(0, current[k] - prev[k]);
    this.points.push(point);
    if (this.points.length > this.size) this.points.shift();
    this.last = current;
    this.lastAt = now;
  }

  series(): ThroughputPoint[] {
    return [...this.points];
  }

  /** Counts over the last `windowMs` (the samples that ended within it), plus what happened since the last sample. */
  recent(windowMs: number, now = Date.now()): ThroughputCounters {
    const out = { ...ZERO };
    for (const p of this.points) if (p.at > now - windowMs) for (const k of Object.keys(ZERO) as (keyof ThroughputCounters)[]) out[k] += p[k];
    if (this.last) {
      const current = this.read();
      for (const k of Object.keys(ZERO) as (keyof ThroughputCounters)[]) out[k] += Math.max(0, current[k] - this.last[k]);
    }
    return out;
  }
}
