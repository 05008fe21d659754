import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

/**
 * An emulated network between a benchmark and a local server: a delaying TCP forwarder (forwarder.ts, its own
 * process) on a free loopback port, holding every chunk `oneWayMs` in each direction. A user-space forwarder
 * because this machine's kernel has no `netem` qdisc (`tc qdisc add … netem` answers "Specified qdisc kind is
 * unknown"). The caller measures the round trip it gets (timer resolution adds up to ~1 ms each way).
 */
export interface DelayedPort {
  port: number;
  oneWayMs: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function delayedPort(targetPort: number, oneWayMs: number, targetHost = '127.0.0.1'): Promise<DelayedPort> {
  if (!Number.isFinite(oneWayMs) || oneWayMs <= 0) throw new Error(`network delay: expected a positive number of milliseconds, got ${oneWayMs}`);
  const port = await freePort();
  const child = spawn(process.execPath, [join(__dirname, 'forwarder.js'), String(port), targetHost, String(targetPort), String(oneWayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const kill = () => child.kill('SIGTERM');
  process.once('exit', kill);
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`network delay: the forwarder exited (${code})`)));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
  });
  return {
    port,
    oneWayMs,
    async stop() {
      child.removeAllListeners('exit');
      process.removeListener('exit', kill);
      kill();
    },
  };
}
