import type { OutboxMessage } from '../message/OutboxMessage';

/**
 * Receives the timings of the relay's database statements, for metrics (TmmAdmin feeds its
 * `tmm_relay_*` histograms from one) or logs. Attach it with `relay.observe(observer)` — claims of that
 * relay and mark-delivered statements of its Dispatcher, which marks the fast path's rows too — or
 * `dispatcher.observe(observer)` for the marks alone.
 *
 * Contract:
 * - Every method is optional. onClaim and onMarked are called synchronously, once per statement (never per
 *   message), right after the statement completed successfully; a failed statement is logged by the relay
 *   and not observed. onConfirmed is the one per-message call: once per publish the broker confirmed.
 * - `ms` is the statement's wall time in milliseconds, from `performance.now()` (fractional).
 * - A method must be cheap and must not throw: anything it throws is swallowed, and never affects claiming,
 *   publishing or marking. It must not call back into the relay or the Dispatcher.
 * - Nothing is timed while no observer is attached.
 */
export interface RelayObserver {
  /** A sweep's claim statement returned `rows` rows (0 for a sweep that found nothing due) after `ms`. */
  onClaim?(rows: number, ms: number): void;
  /** A mark-delivered statement for `rows` confirmed ids (deleted or set DELIVERED) completed after `ms`. */
  onMarked?(rows: number, ms: number): void;
  /**
   * The broker confirmed the publish of `message` (relay or fast path) at `confirmedAt` (epoch ms, Date.now()).
   * Its `createdAt` (set by send(), inside the business transaction) and `availableAt` say when it became due.
   */
  onConfirmed?(message: OutboxMessage, confirmedAt: number): void;
}

/** The observers of one component (internal to the relay); each notification calls every one, swallowing what it throws. */
export class RelayObservers {
  private list: RelayObserver[] = [];

  /** True when at least one observer is attached (so the caller times its statement). */
  get active(): boolean {
    return this.list.length > 0;
  }

  /** Attaches an observer; the returned function detaches it. */
  add(observer: RelayObserver): () => void {
    this.list = [...this.list, observer];
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      const i = this.list.indexOf(observer);
      if (i >= 0) this.list = [...this.list.slice(0, i), ...this.list.slice(i + 1)];
    };
  }

  claimed(rows: number, ms: number): void {
    this.notify('onClaim', rows, ms);
  }

  marked(rows: number, ms: number): void {
    this.notify('onMarked', rows, ms);
  }

  confirmed(message: OutboxMessage): void {
    const at = Date.now();
    for (const o of this.list) {
      try {
        o.onConfirmed?.(message, at);
      } catch {
        // An observer must not break the relay (see RelayObserver).
      }
    }
  }

  private notify(method: 'onClaim' | 'onMarked', rows: number, ms: number): void {
    for (const o of this.list) {
      try {
        o[method]?.(rows, ms);
      } catch {
        // An observer must not break the relay (see RelayObserver).
      }
    }
  }
}
