import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A RabbitMQ node of its own for a fault test: started on free ports with its own data directory, no
 * plugins and, unless given, no config file (`config`: rabbitmq.conf lines; `advancedConfig`: an
 * advanced.config term, for settings rabbitmq.conf has no key for), so a test may SIGSTOP, SIGCONT or
 * kill it, or tune it, without touching the shared broker. `start()` fails with a clear message when the
 * node cannot be started here. `ctl()` runs rabbitmqctl against this node. With `management: true` the
 * node (only it) runs the rabbitmq_management plugin, from the plugins the RabbitMQ package ships
 * (nothing is downloaded), on a free port of its own: `managementUrl`.
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
  static async create(options: { startTimeoutMs?: number; config?: string; advancedConfig?: string; management?: boolean } = {}): Promise<PrivateRabbit> {
    const startTimeoutMs = options.startTimeoutMs ?? 60_000;
    const port = await freePort();
    const distPort = await freePort();
    const managementPort = options.management ? await freePort() : undefined;
    const dir = mkdtempSync(join(tmpdir(), 'tmm-rabbit-'));
    const rabbit = new PrivateRabbit(port, distPort, dir, `tmmtest${port}@localhost`, managementPort);
    writeFileSync(join(dir, 'enabled_plugins'), managementPort === undefined ? '[].\n' : '[rabbitmq_management].\n');
    const files = ['enabled_plugins'];
    const config = [options.config, managementPort === undefined ? undefined : `management.tcp.port = ${managementPort}\nmanagement.tcp.ip = 127.0.0.1\n`]
      .filter((c): c is string => c !== undefined)
      .join('\n');
    if (config !== '') {
      writeFileSync(join(dir, 'rabbitmq.conf'), config);
      files.push('rabbitmq.conf');
    }
    if (options.advancedConfig !== undefined) {
      writeFileSync(join(dir, 'advanced.config'), options.advancedConfig);
      files.push('advanced.config');
    }
    // rabbitmq-server drops to the rabbitmq user when started as root: it must own its directories.
    try {
      const uid = Number(execFileSync('id', ['-u', 'rabbitmq']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'rabbitmq']).toString().trim());
      chownSync(dir, uid, gid);
      for (const f of files) chownSync(join(dir, f), uid, gid);
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
      RABBITMQ_CONFIG_FILE: join(this.dir, existsSync(join(this.dir, 'rabbitmq.conf')) ? 'rabbitmq.conf' : 'no-config'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(this.dir, existsSync(join(this.dir, 'advanced.config')) ? 'advanced.config' : 'no-advanced.config'),
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

  /** Runs `rabbitmqctl -n <this node> …` and returns its stdout. */
  ctl(args: string[]): string {
    return execFileSync('rabbitmqctl', ['-n', this.nodeName, ...args], { encoding: 'utf8', timeout: 60_000 });
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
