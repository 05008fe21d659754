import { Counter, Gauge, Registry } from 'prom-client';
import type { BufferedJourneyRecorder } from '../../journey/BufferedJourneyRecorder';

/**
 * The journey writer's metrics, in a registry of their own (merged into /metrics by TmmMetrics' `extra`):
 * - tmm_journey_events_total{result}: events recorded (buffered), written, dropped (buffer full or after stop), purged
 * - tmm_journey_write_failures_total: failed writes (their events kept for the next try while the buffer had room)
 * - tmm_journey_buffered_events: events waiting to be written
 * Alert on `rate(tmm_journey_events_total{result="dropped"}[5m]) > 0`: the journey is missing steps.
 */
export function journeyMetricsRegistry(recorder: BufferedJourneyRecorder): Registry {
  const r = new Registry();
  const seen = { recorded: 0, written: 0, dropped: 0, purged: 0, failedWrites: 0 };
  new Counter({
    name: 'tmm_journey_events_total',
    help: 'Journey events of this process by result: recorded, written, dropped (buffer full: missing steps), purged (retention)',
    labelNames: ['result'],
    registers: [r],
    collect() {
      for (const k of ['recorded', 'written', 'dropped', 'purged'] as const) {
        const n = recorder.stats[k];
        this.inc({ result: k }, Math.max(0, n - seen[k]));
        seen[k] = n;
      }
    },
  });
  new Counter({
    name: 'tmm_journey_write_failures_total',
    help: 'Failed writes of journey events to tmm_journey',
    registers: [r],
    collect() {
      const n = recorder.stats.failedWrites;
      this.inc(Math.max(0, n - seen.failedWrites));
      seen.failedWrites = n;
    },
  });
  new Gauge({ name: 'tmm_journey_buffered_events', help: 'Journey events waiting to be written', registers: [r], collect() { this.set(recorder.buffered); } });
  return r;
}
