import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * V8's sampling CPU profiler through node:inspector, started and stopped around a timed section only
 * (BENCH_PROFILE=<file prefix>). `summary` attributes self time to packages / tmm files, per operation.
 */
export class SectionProfiler {
  private session: Session | undefined;
  constructor(private readonly prefix: string | undefined) {}

  get enabled(): boolean {
    return this.prefix !== undefined && this.prefix !== '';
  }

  async start(): Promise<void> {
    if (!this.enabled) return;
    this.session = new Session();
    this.session.connect();
    await this.session.post('Profiler.enable');
    await this.session.post('Profiler.setSamplingInterval', { interval: 50 });
    await this.session.post('Profiler.start');
  }

  /** Stops, writes `<prefix>-<label>.cpuprofile` and prints self µs per op by area and the top functions. */
  async stop(label: string, ops: number): Promise<void> {
    if (!this.session) return;
    const { profile } = (await this.session.post('Profiler.stop')) as unknown as { profile: Profile };
    this.session.disconnect();
    this.session = undefined;
    writeFileSync(`${this.prefix}-${label}.cpuprofile`, JSON.stringify(profile));
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
    const areas = new Map<string, number>();
    const fns = new Map<string, number>();
    for (const [id, us] of self) {
      const n = byId.get(id)!;
      const area = areaOf(n.callFrame.url, n.callFrame.functionName);
      areas.set(area, (areas.get(area) ?? 0) + us);
      const fn = `${n.callFrame.functionName || '(anon)'} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
      fns.set(fn, (fns.get(fn) ?? 0) + us);
    }
    const total = profile.endTime - profile.startTime;
    const fmt = (m: Map<string, number>, k: number) =>
      [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, us]) => `  ${(us / ops).toFixed(1).padStart(7)} µs/op  ${name}`).join('\n');
    console.log(`profile ${label}: ${(total / ops).toFixed(1)} µs/op wall over ${ops} ops; self time by area:\n${fmt(areas, 20)}\ntop functions:\n${fmt(fns, 30)}`);
  }
}

function shortUrl(url: string): string {
  const i = url.lastIndexOf('node_modules/');
  if (i >= 0) return url.slice(i + 13);
  const j = url.search(/\/(src|bench|dist)\//);
  return j >= 0 ? url.slice(j + 1) : url;
}

function areaOf(url: string, fn: string): string {
  if (url === '') return fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)' ? fn : `(native) ${fn}`;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const s = /\/(src|bench)\/(.*)$/.exec(url);
  return s ? `tmm ${s[1]}/${s[2]}` : url;
}
