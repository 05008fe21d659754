/**
 * What a running consumer checks to learn that the runner is stopping: `stopping` once stop() began (no
 * new work, waits are cut short), `abandoned` once its timeout passed (handlers still running must not
 * commit, settle or publish anything: their deliveries went back to the broker).
 */
export class StopGate {
  private _stopping = false;
  private _abandoned = false;
  private readonly sleepers = new Set<() => void>();

  get stopping(): boolean {
    return this._stopping;
  }

  get abandoned(): boolean {
    return this._abandoned;
  }

  stop(): void {
    this._stopping = true;
    for (const wake of [...this.sleepers]) wake();
  }

  abandon(): void {
    this._abandoned = true;
    this.stop();
  }

  /** Resolves true after `ms`, or false as soon as the runner stops (at once if it already has). */
  sleep(ms: number): Promise<boolean> {
    if (this._stopping) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.sleepers.delete(wake);
        resolve(true);
      }, ms);
      this.sleepers.add(wake);
    });
  }
}
