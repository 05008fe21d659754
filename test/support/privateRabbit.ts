import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A RabbitMQ node of its own for a fault test: started on free ports with its own data directory, no
 * plugins and no config file, so a test may SIGSTOP, SIGCONT or kill it without touching the shared
 * broker. `start()` fails with a clear message when the node cannot be started here. With
 * `{ management: true }` the node (only it) runs the rabbitmq_management plugin, from the plugins the
 * RabbitMQ package ships (nothing is downloaded), on a free port of its own: `managementUrl`.
 *
 * freeze()/thaw() SIGSTOP/SIGCONT the node's beam.smp process: its TCP sockets stay open and nothing
 * answers, as with a hung broker or a silent network partition. stop() kills the node (the port then
 * refuses connections) and start() on the same instance brings it back on the same port and data.
 */
export class PrivateRabbit {
  private child: ChildProcess | undefined;
  private beamPid: number | undefined;
  private output = '';

  private constructor(
    readonly port: number,
    private readonly distPort: number,
    private readonly dir: string,
    readonly nodeName: string,
    /** The management plugin's HTTP port, when started with `{ management: true }`. */
    readonly managementPort?: number,
  ) {}

  /** http://127.0.0.1:port of the management API (guest/guest), when started with `{ management: true }`. */
  get managementUrl(): string {
    if (this.managementPort === undefined) throw new Error('PrivateRabbit: started without { management: true }');
    return `http://127.0.0.1:${this.managementPort}`;
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  /** Creates and starts a node (about 6 s on this machine). */
  static async create(startTimeoutMs = 60_000, options: { management?: boolean } = {}): Promise<PrivateRabbit> {
    const port = await freePort();
    const distPort = await freePort();
    const managementPort = options.management ? await freePort() : undefined;
    const dir = mkdtempSync(join(tmpdir(), 'tmm-rabbit-'));
    const rabbit = new PrivateRabbit(port, distPort, dir, `tmmtest${port}@localhost`, managementPort);
    writeFileSync(join(dir, 'enabled_plugins'), managementPort === undefined ? '[].\n' : '[rabbitmq_management].\n');
    if (managementPort !== undefined) writeFileSync(join(dir, 'node.conf'), `management.tcp.port = ${managementPort}\nmanagement.tcp.ip = 127.0.0.1\n`);
    // rabbitmq-server drops to the rabbitmq user when started as root: it must own its directories.
    try {
      const uid = Number(execFileSync('id', ['-u', 'rabbitmq']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'rabbitmq']).toString().trim());
      chownSync(dir, uid, gid);
      chownSync(join(dir, 'enabled_plugins'), uid, gid);
      if (managementPort !== undefined) chownSync(join(dir, 'node.conf'), uid, gid);
    } catch {
      chmodSync(dir, 0o777);
    }
    await rabbit.start(startTimeoutMs);
    return rabbit;
  }

  /** Starts the node (again) and resolves once it accepts AMQP connections. */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.child) return;
    this.output = '';
    const env = {
      ...process.env,
      RABBITMQ_NODENAME: this.nodeName,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_MNESIA_BASE: join(this.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(this.dir, 'log'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: join(this.dir, this.managementPort === undefined ? 'no-config' : 'node.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(this.dir, 'no-advanced.config'),
      RABBITMQ_PID_FILE: join(this.dir, 'node.pid'),
    };
    let child: ChildProcess;
    try {
      child = spawn('rabbitmq-server', [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`PrivateRabbit: could not run rabbitmq-server (${(e as Error).message})`);
    }
    this.child = child;
    child.stdout?.on('data', (b: Buffer) => (this.output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (this.output += b.toString()));
    let exited = false;
    child.on('error', (e) => {
      exited = true;
      this.output += `\nspawn error: ${e.message}`;
    });
    child.on('exit', () => {
      exited = true;
      if (this.child === child) this.child = undefined;
    });
    const until = Date.now() + timeoutMs;
    while (!(await accepts(this.port)) || (this.managementPort !== undefined && !(await accepts(this.managementPort)))) {
      if (exited || Date.now() > until) {
        await this.stop();
        throw new Error(`PrivateRabbit: node ${this.nodeName} did not start on 127.0.0.1:${this.port} within ${timeoutMs}ms:\n${this.output.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    this.beamPid = Number(readFileSync(join(this.dir, 'node.pid'), 'utf8').trim());
    if (!Number.isInteger(this.beamPid) || this.beamPid <= 0) throw new Error(`PrivateRabbit: no beam pid in ${join(this.dir, 'node.pid')}`);
  }

  /** SIGSTOPs the node: connections stay open, nothing answers. */
  freeze(): void {
    process.kill(this.requirePid(), 'SIGSTOP');
  }

  thaw(): void {
    process.kill(this.requirePid(), 'SIGCONT');
  }

  /** Kills the node (its port refuses connections until start()). */
  async stop(): Promise<void> {
    const pid = this.beamPid;
    const child = this.child;
    this.beamPid = undefined;
    if (pid) {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          try {
            child.kill('SIGKILL');
          } catch {
            // gone
          }
          resolve();
        }, 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.child = undefined;
    // The port is free once the listener is gone.
    const until = Date.now() + 10_000;
    while ((await accepts(this.port)) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  }

  /** Stops the node and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private requirePid(): number {
    if (!this.beamPid) throw new Error('PrivateRabbit: the node is not running');
    return this.beamPid;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
