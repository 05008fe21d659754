import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The nats-server binary: from PATH unless TMM_NATS_SERVER_BIN names it. */
const NATS_SERVER = process.env.TMM_NATS_SERVER_BIN ?? 'nats-server';

/**
 * A PRIVATE nats-server with JetStream (loopback, a free port, its own store in a temp directory) for
 * failure tests that stop, kill or freeze the server; the shared one on 4222 is never touched.
 */
export class PrivateNatsServer {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly storeDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  static async start(): Promise<PrivateNatsServer> {
    const port = await freePort();
    const server = new PrivateNatsServer(port, mkdtempSync(join(tmpdir(), 'tmm-nats-')));
    await server.run();
    return server;
  }

  /** Starts the server process (again, on the same port and store after a kill). */
  async run(): Promise<void> {
    const proc = spawn(NATS_SERVER, ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (e) => reject(new Error(`could not start ${NATS_SERVER} (private nats-server for a failure test; install nats-server or set TMM_NATS_SERVER_BIN): ${e.message}`)));
      proc.once('exit', (code) => reject(new Error(`private nats-server exited with ${code} before accepting connections: ${stderr}`)));
    });
    failed.catch(() => undefined);
    this.proc = proc;
    const until = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (Date.now() > until) throw new Error(`private nats-server on port ${this.port} did not accept connections within 10s: ${stderr}`);
      await Promise.race([failed, new Promise((r) => setTimeout(r, 50))]);
    }
  }

  /** SIGKILL: the process dies at once, with whatever it had not written. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  /** SIGSTOP, resolved once the kernel reports the process stopped (the signal is asynchronous). */
  async pause(): Promise<void> {
    const pid = this.proc?.pid;
    if (!pid) throw new Error('private nats-server is not running');
    this.proc!.kill('SIGSTOP');
    const until = Date.now() + 5_000;
    while (!/^\d+ \(.*\) T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) {
      if (Date.now() > until) throw new Error(`private nats-server (pid ${pid}) did not stop after SIGSTOP`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
