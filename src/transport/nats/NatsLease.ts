import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';

/**
 * Single active consumer on JetStream 2.9 (which has no pinned consumers): a lease per queue, the latest
 * message on `<prefix>.leases.<queue>` in the `<P>_LEASES` stream, taken and renewed by compare-and-set on
 * the subject's last sequence (`Nats-Expected-Last-Subject-Sequence`). The holder renews every leaseMs/3;
 * a holder that died is replaced once its lease ran out; a subscription releases it once what it holds is
 * settled. A holder that takes over a lease that ran out (rather than one released) learns when it ran out
 * (`takeover`): what the dead holder had in hand comes back only after the queue's ackWait, and the new
 * holder must not start on later messages before that (NatsSubscription waits).
 *
 * **No clock is compared across hosts.** A lease counts as run out when its entry (its stream sequence) has
 * not changed for leaseMs of the candidate's own monotonic time, from when the candidate first saw that
 * entry: the holder renews every leaseMs/3, so a live holder always changes it in time, whatever the two
 * wall clocks say. (Comparing the holder's `until` with the candidate's clock let a candidate whose clock ran
 * ahead by more than 2/3 of leaseMs take the lease from a live holder: two active consumers of an ordered
 * queue.) The cost: a candidate that starts while a dead holder's entry is there waits one leaseMs from its
 * first look, even when that holder died long before. `until` is still written, for operators reading the
 * stream. Every reading here is the local clock: `takeover.previousUntil` is when this candidate judged the
 * lease run out, which is no earlier than when it really did.
 */
export class NatsLease {
  readonly holder = randomUUID();
  private seq = 0;
  private heldUntil = 0;
  /** Set when the lease was taken over from a holder whose lease ran out: when it was judged run out (this process's clock). */
  takeover: { previousUntil: number } | undefined;
  /** Another holder's entry as this candidate last saw it: its sequence, and when (monotonic ms) it first saw that one. */
  private seen: { seq: number; at: number } | undefined;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly subject: string,
    readonly leaseMs: number,
    /** The wall clock (tests give a skewed one); elapsed time is always measured with performance.now(). */
    private readonly now: () => number = Date.now,
  ) {}

  get held(): boolean {
    return this.seq > 0 && this.now() < this.heldUntil;
  }

  /** Takes the lease if it is free or expired, or renews it if held; false when another holder has it. */
  async acquireOrRenew(): Promise<boolean> {
    let expected = this.seq;
    let previousUntil: number | undefined;
    if (this.seq === 0) {
      const last = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.subject }).catch(() => null);
      if (last) {
        const lease = parse(last.data);
        if (lease.holder && lease.holder !== this.holder) {
          const t = performance.now();
          // A new entry (renewed, or first seen): its lease runs leaseMs from now, as far as this process can tell.
          if (this.seen?.seq !== last.seq) {
            this.seen = { seq: last.seq, at: t };
            return false;
          }
          if (t - this.seen.at < this.leaseMs) return false;
          previousUntil = this.now(); // ran out, not released: its holder may have died mid-message
        }
        expected = last.seq;
      }
    }
    const until = this.now() + this.leaseMs;
    try {
      const pa = await this.js.publish(this.subject, encode({ holder: this.holder, until }), { expect: { lastSubjectSequence: expected } });
      if (this.seq === 0) this.takeover = previousUntil === undefined ? undefined : { previousUntil };
      this.seen = undefined;
      this.seq = pa.seq;
      this.heldUntil = until;
      return true;
    } catch {
      this.seq = 0;
      this.heldUntil = 0;
      return false;
    }
  }

  async release(): Promise<void> {
    if (this.seq === 0) return;
    const expected = this.seq;
    this.seq = 0;
    this.heldUntil = 0;
    await this.js.publish(this.subject, encode({ holder: null, until: 0 }), { expect: { lastSubjectSequence: expected } }).catch(() => undefined);
  }
}

function encode(v: { holder: string | null; until: number }): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}

function parse(data: Uint8Array): { holder: string | null; until: number } {
  try {
    const v = JSON.parse(new TextDecoder().decode(data)) as { holder?: unknown; until?: unknown };
    return { holder: typeof v.holder === 'string' ? v.holder : null, until: typeof v.until === 'number' ? v.until : 0 };
  } catch {
    return { holder: null, until: 0 };
  }
}
