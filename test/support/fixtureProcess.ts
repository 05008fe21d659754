import { ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(__dirname, '..', '..');

/** One line a fixture wrote to stdout: a JSON object with an `event` name (see test/fixtures/fixtureChannel.ts). */
export interface FixtureEvent {
  event: string;
  [key: string]: unknown;
}

/**
 * A TypeScript script under test/fixtures/ running in its own node process (through test/support/register.js,
 * so `tmm` is src/). It reports on stdout, one JSON event per line; stderr is kept for failure messages.
 * Every one spawned is tracked until it exits, so a test's afterEach can kill what is left (killFixtures).
 */
export class FixtureProcess {
  readonly events: FixtureEvent[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private listeners = new Set<() => void>();

  private constructor(
    readonly script: string,
    readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: FixtureEvent;
      try {
        event = JSON.parse(line) as FixtureEvent;
      } catch {
        event = { event: 'text', text: line };
      }
      this.events.push(event);
      for (const l of [...this.listeners]) l();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 200) this.stderr.shift();
    });
    this.exited = new Promise((done) => {
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        done(this.exit);
        for (const l of [...this.listeners]) l();
      });
    });
  }

  static spawn(script: string, env: Record<string, string>): FixtureProcess {
    const child = spawn(process.execPath, ['-r', join(root, 'test', 'support', 'register.js'), join(root, 'test', 'fixtures', script)], {
      cwd: root,
      env: { ...process.env, ...env },
      // stdin is only held open: the fixture exits when it closes (see exitWithParent in test/fixtures/fixtureChannel.ts).
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const p = new FixtureProcess(script, child);
    live.add(p);
    return p;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  /** Resolves with the first event matching `match`; rejects if the process exits first or at the timeout. */
  waitFor(match: (e: FixtureEvent) => boolean, what: string, timeoutMs = 20_000): Promise<FixtureEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find(match);
        if (found) return finish(() => resolve(found));
        if (this.exit) return finish(() => reject(this.failure(`exited (${JSON.stringify(this.exit)}) before ${what}`)));
      };
      const timer = setTimeout(() => finish(() => reject(this.failure(`timed out after ${timeoutMs}ms waiting for ${what}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exit) this.child.kill(signal);
    return this.exited;
  }

  private failure(text: string): Error {
    return new Error(`fixture ${this.script} (pid ${this.child.pid}) ${text}\n--- its stderr (last lines) ---\n${this.stderr.slice(-30).join('\n')}`);
  }
}

const live = new Set<FixtureProcess>();

/** SIGKILLs every fixture process still running and waits for them to exit (for afterEach/afterAll). */
export async function killFixtures(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill('SIGKILL')));
}
