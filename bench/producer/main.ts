/**
 * Producer benchmark. Same run, rounds varying the order of four sides (a Williams design), medians with min–max:
 *  - tmm: a transaction that inserts one business row and sends one message through @TransactionalMessage
 *    (outbox row + after-commit publish on the in-memory transport + batched mark-delivered), against
 *    the same @Transactional method with the business insert only;
 *  - the floor: the same database work through the raw driver with prepared statements (pg named
 *    statements on a pg.Pool of the same size; cached better-sqlite3 Statements), with and without the
 *    outbox row;
 * at 1 caller and at 32 concurrent callers, on SQLite (better-sqlite3, WAL file) and PostgreSQL. What each
 * world adds for the message (msg − base: per round, the median of the paired block differences) is
 * compared: `added_vs_floor` = tmm's added µs / the raw driver's added µs; the same on CPU time (`cpu_*`).
 * Plus the async-context overhead of the AsyncLocalStorage and cls-hooked adapters. Last line: one JSON
 * object. BENCH_PROFILE=<prefix> also profiles one extra tmm section per side; BENCH_SIDE runs one side
 * alone (for callgrind).
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { IsInt, IsString } from 'class-validator';
import { Column, DataSource, Entity, PrimaryColumn } from 'typeorm';
import Database from 'better-sqlite3';
import { Pool } from 'pg';
import { AsyncLocalContextStore, ClsHookedContextStore, ContextStore, MIGRATIONS, Tmm, newContext, newMessageId } from '../../src/internal';
import { MessageContract, Transactional, TransactionalMessage } from 'tmm/decorators';
import { median, round, timeOps, williamsOrder } from '../support/stats';
import { SectionProfiler } from '../support/profile';
import { DelayedPort, delayedPort } from '../support/netDelay';

@Entity({ name: 'bench_order' })
class BenchOrder {
  @PrimaryColumn({ type: 'varchar', length: 40 }) id!: string;
  @Column({ type: 'int' }) amount!: number;
}

@MessageContract({ topic: 'bench.order-placed' })
class OrderPlaced {
  @IsString() id!: string;
  @IsInt() amount!: number;
}

class Service {
  constructor(private readonly tmm: Tmm) {}
  @Transactional({ dataSource: 'bench' })
  async insertOnly(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id, amount: 1 });
  }
  @TransactionalMessage({ dataSource: 'bench' })
  async insertAndSend(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id, amount: 1 });
    await this.tmm.producer.send(Object.assign(new OrderPlaced(), { id, amount: 1 }));
  }
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
/** For profiling one part: BENCH_ONLY=sqlite|postgres|context (the JSON line then has only that part). */
const ONLY = process.env.BENCH_ONLY;
const CONCURRENCY = [1, 32] as const;
const POOL = 10; // TypeORM's default pool size on PostgreSQL; the floor's pg.Pool gets the same
const profiler = new SectionProfiler(process.env.BENCH_PROFILE);
/** BENCH_PROFILE_CALLERS=32: the profiled section runs at 32 concurrent callers instead of 1. */
const PROFILE_CALLERS = process.env.BENCH_PROFILE_CALLERS === '32' ? 32 : 1;
/** BENCH_SIDE=<tmm|floor>.<base|msg>: that side alone (see runSide). */
const SIDE = process.env.BENCH_SIDE;

const OUTBOX_COLS = ['id', 'topic', 'exchange', 'routing_key', 'payload', 'headers', 'status', 'attempts', 'available_at', 'lease_owner', 'lease_until', 'ordering_key', 'created_at'];

/** Runs `ops` operations on `callers` concurrent loops; returns wall µs per operation (incl. `after`). */
async function timeConcurrent(ops: number, callers: number, fn: () => Promise<unknown>, after?: () => Promise<unknown>): Promise<number> {
  if (callers === 1 && !after) return timeOps(ops, fn);
  let next = 0;
  const start = process.hrtime.bigint();
  const loop = async () => {
    while (next++ < ops) await fn();
  };
  await Promise.all(Array.from({ length: callers }, loop));
  if (after) await after();
  return Number(process.hrtime.bigint() - start) / 1000 / ops;
}

interface Side {
  op: () => Promise<unknown>;
  after?: () => Promise<unknown>;
}
/**
 * CPU time (µs) spent so far for the run: this process's main thread (its run time from
 * /proc/self/task/<pid>/schedstat, ns) plus, on PostgreSQL, the run's own server backends (the same per
 * backend process). Waiting for a CPU that other work on the machine holds is not in it, so it survives
 * load that the wall clock does not (caches shared with that work still slow it somewhat). Helper threads
 * (GC, libuv) are left out: on a loaded machine their spinning for a CPU would count as work.
 */
type CpuClock = (() => number) & { refresh?: () => Promise<void> };
const MAIN_THREAD = `/proc/self/task/${process.pid}/schedstat`;
const schedNs = (file: string) => Number(readFileSync(file, 'utf8').split(' ')[0]);
const nodeCpu: CpuClock = () => schedNs(MAIN_THREAD) / 1000;

interface World {
  base: Side;
  msg: Side;
  /** Removes what the side left behind (the floor's last, not yet deleted outbox rows). */
  cleanup?: () => Promise<unknown>;
}

interface LevelResult {
  added_us: number;
  floor_added_us: number;
  added_vs_floor: number;
  added_vs_floor_range: [number, number];
  added_range_us: [number, number];
  floor_added_range_us: [number, number];
  base_us: number;
  msg_us: number;
  floor_base_us: number;
  floor_msg_us: number;
  cpu_added_us: number;
  cpu_floor_added_us: number;
  cpu_added_vs_floor: number;
  cpu_added_vs_floor_range: [number, number];
  ratio: number;
  floor_ratio: number;
}

/**
 * Alternating rounds: in each round, per concurrency level, the four sides in blocks, each block in one row of
 * a Williams design (every side follows every other one equally often). Added µs
 * and their ratio are taken per round (the two sides of a world ran back to back), then the median.
 */
async function compare(label: string, tmmWorld: World, floor: World, ops: Record<number, number>, cpu: CpuClock = nodeCpu, blockSize: Record<number, number> = { 1: 50, 32: 250 }): Promise<Record<number, LevelResult>> {
  const sides = [
    ['tmm', 'base'],
    ['tmm', 'msg'],
    ['floor', 'base'],
    ['floor', 'msg'],
  ] as const;
  const out: Record<number, LevelResult> = {};
  for (const c of CONCURRENCY) {
    // Warm-up at this level: JIT, pools, statement caches.
    for (const [w, s] of sides) {
      const side = (w === 'tmm' ? tmmWorld : floor)[s];
      await timeConcurrent(Math.min(200, ops[c]), c, side.op, side.after);
    }
  }
  // Per round and level: the paired differences msg − base of each block cycle (the two blocks ran within
  // a few ms of each other), and their median over the round's cycles — a cycle that a burst of
  // load from other work hit is an outlier there, not a shift of the mean.
  const added: Record<number, { tmm: number[]; floor: number[]; tmmCpu: number[]; floorCpu: number[] }> = {};
  const means: Record<number, Record<string, number[]>> = {};
  for (const c of CONCURRENCY) {
    added[c] = { tmm: [], floor: [], tmmCpu: [], floorCpu: [] };
    means[c] = { 'tmm.base': [], 'tmm.msg': [], 'floor.base': [], 'floor.msg': [] };
  }
  for (let r = 0; r < ROUNDS; r++) {
    await cpu.refresh?.();
    for (const c of CONCURRENCY) {
      // A round interleaves the four sides in blocks (their order varied block by block), so load others put
      // on the machine, and what a side leaves behind, falls on all four alike.
      const block = blockSize[c];
      const blocks = Math.max(1, Math.round(ops[c] / block));
      const t: Record<string, number[]> = { 'tmm.base': [], 'tmm.msg': [], 'floor.base': [], 'floor.msg': [] };
      const u: Record<string, number[]> = { 'tmm.base': [], 'tmm.msg': [], 'floor.base': [], 'floor.msg': [] };
      for (let b = 0; b < blocks; b++) {
        // Each block a row of a Williams design: every side follows every other one equally often.
        const order = williamsOrder(sides.length, b + r);
        for (let k = 0; k < sides.length; k++) {
          const [w, s] = sides[order[k]];
          const side = (w === 'tmm' ? tmmWorld : floor)[s];
          const cpu0 = cpu();
          t[`${w}.${s}`].push(await timeConcurrent(block, c, side.op, side.after));
          u[`${w}.${s}`].push((cpu() - cpu0) / block);
        }
      }
      for (const [k, v] of Object.entries(t)) means[c][k].push(v.reduce((a, b) => a + b, 0) / v.length);
      added[c].tmm.push(median(t['tmm.msg'].map((m, i) => m - t['tmm.base'][i])));
      added[c].floor.push(median(t['floor.msg'].map((m, i) => m - t['floor.base'][i])));
      added[c].tmmCpu.push(median(u['tmm.msg'].map((m, i) => m - u['tmm.base'][i])));
      added[c].floorCpu.push(median(u['floor.msg'].map((m, i) => m - u['floor.base'][i])));
    }
  }
  for (const c of CONCURRENCY) {
    const x = means[c];
    const tmmAdded = added[c].tmm;
    const floorAdded = added[c].floor;
    const ratios = tmmAdded.map((a, i) => a / floorAdded[i]);
    const cpuRatios = added[c].tmmCpu.map((a, i) => a / added[c].floorCpu[i]);
    const range = (xs: number[], d = 1): [number, number] => [round(Math.min(...xs), d), round(Math.max(...xs), d)];
    const res: LevelResult = {
      added_us: round(median(tmmAdded), 1),
      floor_added_us: round(median(floorAdded), 1),
      added_vs_floor: round(median(ratios), 2),
      added_vs_floor_range: range(ratios, 2),
      added_range_us: range(tmmAdded),
      floor_added_range_us: range(floorAdded),
      base_us: round(median(x['tmm.base']), 1),
      msg_us: round(median(x['tmm.msg']), 1),
      floor_base_us: round(median(x['floor.base']), 1),
      floor_msg_us: round(median(x['floor.msg']), 1),
      cpu_added_us: round(median(added[c].tmmCpu), 1),
      cpu_floor_added_us: round(median(added[c].floorCpu), 1),
      cpu_added_vs_floor: round(median(cpuRatios), 2),
      cpu_added_vs_floor_range: range(cpuRatios, 2),
      ratio: round(median(x['tmm.msg']) / median(x['tmm.base'])),
      floor_ratio: round(median(x['floor.msg']) / median(x['floor.base'])),
    };
    out[c] = res;
    console.log(
      `${label} ×${c} callers: tmm ${res.base_us} → ${res.msg_us} µs/tx (adds ${res.added_us}, ${res.added_range_us.join('–')}), ` +
        `floor ${res.floor_base_us} → ${res.floor_msg_us} µs/tx (adds ${res.floor_added_us}, ${res.floor_added_range_us.join('–')}), ` +
        `added_vs_floor ${res.added_vs_floor} (${res.added_vs_floor_range.join('–')}), ` +
        `CPU: tmm adds ${res.cpu_added_us}, floor ${res.cpu_floor_added_us}, ×${res.cpu_added_vs_floor} (${res.cpu_added_vs_floor_range.join('–')}), ratio ${res.ratio} (medians of ${ROUNDS} rounds × ${ops[c]})`,
    );
  }
  return out;
}

/** The tmm world on `dataSource`; returns it with a check and a stop to run after the rounds. */
async function tmmWorld(label: string, dataSource: DataSource): Promise<{ world: World; owner: string; profile: (ops: number) => Promise<void>; finish: () => Promise<void> }> {
  // BENCH_SIDE (under callgrind, 50–100× slower): no sweeper (its 1 s polls would count per transaction
  // as often as the slowdown makes a transaction long) and a mark linger that never ends a 50-transaction
  // block, as the 100 ms linger never does at full speed; so the side runs the statements it runs natively.
  const side = SIDE ? { relay: { enabled: false }, markLingerMs: 10_000 } : { relay: {}, markLingerMs: undefined };
  const tmm = new Tmm({
    dataSource,
    name: 'bench',
    transport: 'memory',
    logger: 'silent',
    relay: side.relay,
    dispatcher: { deleteDelivered: process.env.BENCH_KEEP !== '1', ...(side.markLingerMs ? { markLingerMs: side.markLingerMs } : {}) },
    // BENCH_PIPELINE=0: the outbox INSERT awaited before COMMIT (the behaviour before ADR 0078).
    ...(process.env.BENCH_PIPELINE === '0' ? { postgres: { pipelineCommit: false } } : {}),
  });
  await tmm.start();
  await tmm.transport.declare({ queues: [{ name: 'sink', bindings: [{ exchange: 'tmm.events', routingKey: '#' }] }] });
  await tmm.transport.subscribe({ queue: { name: 'sink' }, prefetch: 1000 }, (d) => d.ack());
  const svc = new Service(tmm);
  let n = 0;
  let sent = 0;
  // Unique within the run (a fresh SQLite file and PostgreSQL schema per run); the suffix keeps the ids'
  // length. Drawn once: randomBytes per transaction cost 4–7 µs of OpenSSL here, and more on the msg side.
  const suffix = randomBytes(4).toString('hex');
  const id = () => `${label}-${n++}-${suffix}`;
  const world: World = {
    base: { op: () => svc.insertOnly(id()) },
    // The publish and mark-delivered work after commit belongs to this side's cost: wait for it.
    msg: { op: () => (sent++, svc.insertAndSend(id())), after: () => tmm.dispatcher.flush() },
  };
  return {
    world,
    owner: tmm.instanceId,
    async profile(ops) {
      for (const s of ['base', 'msg'] as const) {
        await profiler.start();
        await timeConcurrent(ops, PROFILE_CALLERS, world[s].op, world[s].after);
        await profiler.stop(`${label}-${s}`, ops);
      }
    },
    async finish() {
      await tmm.dispatcher.flush();
      const counts = await tmm.outbox.countByStatus();
      await tmm.stop();
      // Every message published and its row marked (deleted by default): the fast side did all its work.
      const { published, marked } = tmm.dispatcher.stats;
      if (published !== sent || marked !== sent || counts.PENDING !== 0 || counts.DEAD !== 0) {
        throw new Error(`${label}: expected ${sent} published and marked, got ${published}/${marked}, rows ${JSON.stringify(counts)}`);
      }
    },
  };
}

/**
 * The floor's rows, the same as tmm's side writes them: business ids of the same form and length, and the
 * outbox row tmm stores for `OrderPlaced { id, amount: 1 }` — that payload, its headers (the contract version
 * and the correlation id, which is the message's own id), leased to an owner as long as tmm's (another one:
 * tmm's sweeper must leave the floor's rows alone where both share the table).
 */
interface FloorRows {
  businessId(): string;
  outboxParams(id: string, businessId: string): unknown[];
}
function floorRows(label: string, tmmOwner: string): FloorRows {
  const suffix = randomBytes(4).toString('hex');
  const owner = tmmOwner.replace(/.$/, (c) => (c === 'f' ? 'e' : 'f'));
  let n = 0;
  return {
    businessId: () => `${label}-${n++}-${suffix}`,
    outboxParams(id, businessId) {
      const now = Date.now();
      const payload = JSON.stringify({ id: businessId, amount: 1 });
      const headers = JSON.stringify({ 'tmm-contract-version': 1, 'tmm-correlation-id': id });
      return [id, 'bench.order-placed', 'tmm.events', 'bench.order-placed', payload, headers, 'PENDING', 0, now, owner, now + 30_000, null, now];
    },
  };
}

/**
 * Raw better-sqlite3, every statement prepared once: BEGIN, business INSERT, [outbox INSERT,] COMMIT; the
 * delivered ids deleted 200 per DELETE and, at the end of each block (`after`), the ids still pending — the
 * same statements tmm's side runs (its batched mark, 200 per statement, and the `dispatcher.flush()` that
 * ends its block), so both sides delete the same rows per statement. Message ids come from tmm's own
 * generator (`newMessageId`), so making an id costs both sides the same.
 */
function sqliteFloor(db: Database.Database, rows: FloorRows): World {
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  const business = db.prepare('INSERT INTO bench_order (id, amount) VALUES (?, ?)');
  const outbox = db.prepare(`INSERT INTO tmm_outbox (${OUTBOX_COLS.join(', ')}) VALUES (${OUTBOX_COLS.map(() => '?').join(', ')})`);
  const deletes = new Map<number, Database.Statement>();
  const del = (ids: string[]) => {
    let stmt = deletes.get(ids.length);
    if (!stmt) deletes.set(ids.length, (stmt = db.prepare(`DELETE FROM tmm_outbox WHERE id IN (${ids.map(() => '?').join(', ')})`)));
    stmt.run(...ids);
  };
  const delivered: string[] = [];
  return {
    base: {
      op: async () => {
        begin.run();
        business.run(rows.businessId(), 1);
        commit.run();
      },
    },
    msg: {
      op: async () => {
        const id = newMessageId();
        const businessId = rows.businessId();
        begin.run();
        business.run(businessId, 1);
        outbox.run(...rows.outboxParams(id, businessId));
        commit.run();
        delivered.push(id);
        if (delivered.length >= 200) del(delivered.splice(0, 200));
      },
      after: async () => {
        if (delivered.length > 0) del(delivered.splice(0, delivered.length));
      },
    },
    cleanup: async () => db.prepare(`DELETE FROM tmm_outbox`).run(),
  };
}

/**
 * Raw pg on a pool: BEGIN, named (prepared) business INSERT, [named outbox INSERT,] COMMIT; the delivered
 * ids deleted by one named DELETE per 200 and, at the end of each block (`after`), the ids still pending
 * (as tmm's side does: see sqliteFloor).
 */
function postgresFloor(pool: Pool, rows: FloorRows): World {
  const business = { name: 'floor_business', text: 'INSERT INTO bench_order (id, amount) VALUES ($1, $2)' };
  const outbox = { name: 'floor_outbox', text: `INSERT INTO tmm_outbox (${OUTBOX_COLS.join(', ')}) VALUES (${OUTBOX_COLS.map((_c, i) => `$${i + 1}`).join(', ')})` };
  const del = { name: 'floor_delete', text: 'DELETE FROM tmm_outbox WHERE id = ANY($1::uuid[])' };
  const delivered: string[] = [];
  const tx = async (withRow: boolean) => {
    const client = await pool.connect();
    try {
      const businessId = rows.businessId();
      await client.query('BEGIN');
      await client.query({ ...business, values: [businessId, 1] });
      let id: string | undefined;
      if (withRow) await client.query({ ...outbox, values: rows.outboxParams((id = newMessageId()), businessId) });
      await client.query('COMMIT');
      if (id) {
        delivered.push(id);
        if (delivered.length >= 200) await client.query({ ...del, values: [delivered.splice(0, 200)] });
      }
    } finally {
      client.release();
    }
  };
  return {
    base: { op: () => tx(false) },
    msg: {
      op: () => tx(true),
      after: async () => {
        if (delivered.length > 0) await pool.query({ ...del, values: [delivered.splice(0, delivered.length)] });
      },
    },
    cleanup: () => pool.query('DELETE FROM tmm_outbox WHERE id = ANY($1::uuid[])', [delivered.splice(0, delivered.length)]),
  };
}

/**
 * BENCH_SIDE=<tmm|floor>.<base|msg> with BENCH_SIDE_OPS=n: only that side on SQLite, 1 caller, 200
 * warm-up and n timed transactions, then exit — for instruction counts under callgrind, which do not
 * depend on the machine's load: (Ir at n2 − Ir at n1) / (n2 − n1) is the side's instructions per
 * transaction (see bench/README.md).
 */
async function runSide(side: string, tmmSide: World, floor: World): Promise<void> {
  const [w, s] = side.split('.') as ['tmm' | 'floor', 'base' | 'msg'];
  const chosen = (w === 'tmm' ? tmmSide : w === 'floor' ? floor : undefined)?.[s];
  if (!chosen) throw new Error(`BENCH_SIDE must be tmm|floor . base|msg, got ${side}`);
  // In blocks of 50 with the side's `after` at the end of each, as compare() runs it at 1 caller.
  const blocks = async (ops: number) => {
    let us = 0;
    for (let done = 0; done < ops; done += 50) us += (await timeConcurrent(Math.min(50, ops - done), 1, chosen.op, chosen.after)) * Math.min(50, ops - done);
    return us / ops;
  };
  await blocks(200);
  const n = Number(process.env.BENCH_SIDE_OPS ?? 1000);
  const us = await blocks(n);
  console.log(`side ${side}: ${n} transactions, ${round(us, 1)} µs/tx`);
}

async function benchSqlite(): Promise<Record<number, LevelResult>> {
  const dir = mkdtempSync(join(tmpdir(), 'tmm-bench-'));
  const sqlite = new DataSource({ type: 'better-sqlite3', database: join(dir, 'bench.sqlite'), entities: [BenchOrder], synchronize: true });
  await sqlite.initialize();
  // BENCH_FLOOR_FILE=same: the floor on a second connection to tmm's own file and tables (its rows are
  // leased to another owner and deleted at the end of each block), instead of a file of its own.
  const sameFile = process.env.BENCH_FLOOR_FILE === 'same';
  const raw = new Database(join(dir, sameFile ? 'bench.sqlite' : 'floor.sqlite'));
  try {
    const t = await tmmWorld('sqlite', sqlite);
    // Same settings as the TypeORM connection (WAL; its synchronous level), same tables and indexes.
    raw.pragma('journal_mode = WAL');
    const [{ synchronous }] = (await sqlite.query('PRAGMA synchronous')) as { synchronous: number }[];
    raw.pragma(`synchronous = ${Number(synchronous)}`);
    raw.pragma('busy_timeout = 5000');
    if (!sameFile) {
      raw.exec('CREATE TABLE bench_order (id varchar PRIMARY KEY NOT NULL, amount integer NOT NULL)');
      // Every tmm migration, as tmm.start() runs them: the outbox's indexes include the admin's partial one.
      for (const m of MIGRATIONS) for (const sql of m.statements.sqlite) raw.exec(sql);
    }
    // Blocks of 1,000 transactions: each holds one or more WAL checkpoints (SQLite's default: every 1,000
    // pages), which a row costs as surely as its INSERT. With 50-transaction blocks most blocks had none and
    // the median of the paired differences left them out — mostly on the floor's side, whose added cost is
    // nearly all SQLite's own (bench/README.md, ninth round). BENCH_SQLITE_BLOCK=50 BENCH_SQLITE_OPS=1000
    // BENCH_SQLITE_BLOCK_32=250 BENCH_SQLITE_OPS_32=1500 gives the earlier estimator.
    const ops = { 1: Number(process.env.BENCH_SQLITE_OPS ?? 10_000), 32: Number(process.env.BENCH_SQLITE_OPS_32 ?? 10_000) };
    if (SIDE) {
      await runSide(SIDE, t.world, sqliteFloor(raw, floorRows('sqlite', t.owner)));
      await t.finish();
      return {} as Record<number, LevelResult>;
    }
    const blocks = { 1: Number(process.env.BENCH_SQLITE_BLOCK ?? 1000), 32: Number(process.env.BENCH_SQLITE_BLOCK_32 ?? 1000) };
    const result = await compare('sqlite', t.world, sqliteFloor(raw, floorRows('sqlite', t.owner)), ops, nodeCpu, blocks);
    if (profiler.enabled) await t.profile(ops[PROFILE_CALLERS] * 3);
    await t.finish();
    return result;
  } finally {
    raw.close();
    await sqlite.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** nodeCpu plus the CPU time of the PostgreSQL backends whose application_name is `app` (refreshed per round). */
function backendCpu(admin: DataSource, app: string): CpuClock {
  let pids: number[] = [];
  const last = new Map<number, number>();
  const clock: CpuClock = () => {
    let ns = 0;
    for (const pid of pids) {
      try {
        last.set(pid, schedNs(`/proc/${pid}/schedstat`));
      } catch {
        // gone: keep its last reading
      }
      ns += last.get(pid) ?? 0;
    }
    return nodeCpu() + ns / 1000;
  };
  clock.refresh = async () => {
    const rows = (await admin.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [app])) as { pid: number }[];
    pids = rows.map((r) => Number(r.pid));
  };
  return clock;
}

async function benchPostgres(): Promise<Record<number, LevelResult>> {
  const schema = `tmm_bench_${randomBytes(4).toString('hex')}`;
  const pgConn = { host: process.env.TMM_PG_HOST ?? '127.0.0.1', port: Number(process.env.TMM_PG_PORT ?? 5432), username: process.env.TMM_PG_USER ?? 'postgres', database: process.env.TMM_PG_DATABASE ?? 'test' };
  const admin = new DataSource({ type: 'postgres', ...pgConn });
  await admin.initialize();
  await admin.query(`CREATE SCHEMA ${schema}`);
  // BENCH_NET_DELAY_MS=<one-way ms>: both worlds reach PostgreSQL through a delaying TCP forwarder (an emulated
  // network) instead of plain loopback; the schema and CPU-clock queries go direct.
  const oneWay = process.env.BENCH_NET_DELAY_MS ? Number(process.env.BENCH_NET_DELAY_MS) : undefined;
  let net: DelayedPort | undefined;
  try {
    if (oneWay !== undefined) {
      net = await delayedPort(pgConn.port, oneWay, pgConn.host);
      // The round trip it adds: SELECT 1 through the forwarder against SELECT 1 direct (medians of 50).
      const rtt = async (p: number) => {
        const c = new Pool({ host: p === net!.port ? '127.0.0.1' : pgConn.host, port: p, user: pgConn.username, database: pgConn.database, max: 1 });
        const ts: number[] = [];
        for (let i = 0; i < 60; i++) {
          const t0 = process.hrtime.bigint();
          await c.query('SELECT 1');
          if (i >= 10) ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        await c.end();
        return median(ts);
      };
      const added = (await rtt(net.port)) - (await rtt(pgConn.port));
      netInfo = { net_delay_one_way_ms: oneWay, net_added_rtt_ms: round(added, 2) };
      console.log(`postgres over an emulated network: ${oneWay} ms each way asked, ${added.toFixed(2)} ms added per round trip (SELECT 1 medians)`);
    }
    const port = net?.port ?? pgConn.port;
    const host = net ? '127.0.0.1' : pgConn.host;
    // Both pools keep their connections (no idle timeout) and name them after the run's schema, so the
    // CPU clock finds the run's server backends and the set stays the same through a round.
    const pg = new DataSource({ type: 'postgres', ...pgConn, host, port, schema, entities: [BenchOrder], synchronize: true, poolSize: POOL, applicationName: schema, extra: { options: `-c search_path=${schema}`, idleTimeoutMillis: 0 } });
    await pg.initialize();
    const pool = new Pool({ host, port, user: pgConn.username, database: pgConn.database, max: POOL, options: `-c search_path=${schema}`, application_name: schema, idleTimeoutMillis: 0 });
    try {
      const t = await tmmWorld('postgres', pg);
      // The floor writes the same tables (its rows are leased, so tmm's sweeper leaves them alone).
      const ops = { 1: Number(process.env.BENCH_PG_OPS ?? 600), 32: Number(process.env.BENCH_PG_OPS_32 ?? 2000) };
      const floor = postgresFloor(pool, floorRows('postgres', t.owner));
      const result = await compare('postgres', t.world, floor, ops, backendCpu(admin, schema));
      await floor.cleanup!();
      if (profiler.enabled) await t.profile(ops[PROFILE_CALLERS] * 3);
      await t.finish();
      return result;
    } finally {
      await pool.end();
      await pg.destroy();
    }
  } finally {
    await net?.stop();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.destroy();
  }
}

/** What the JSON line says of the emulated network (BENCH_NET_DELAY_MS), when there was one. */
let netInfo: Record<string, number> = {};

function keys(db: string, r: Record<number, LevelResult>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of CONCURRENCY) {
    const suffix = c === 1 ? '' : `_${c}`;
    for (const [k, v] of Object.entries(r[c])) {
      if (k === 'ratio' && c === 1) out[`${db}_ratio`] = v;
      else out[`${db}_${k}${suffix}`] = v;
    }
  }
  return out;
}

async function benchContext(): Promise<Record<string, number>> {
  const N = 20_000;
  const work = async (store?: ContextStore) => {
    await Promise.resolve();
    return store?.get();
  };
  const als = new AsyncLocalContextStore();
  const cls = new ClsHookedContextStore('tmm-bench');
  const sides: Record<string, () => Promise<unknown>> = {
    none: () => work(),
    als: () => als.run(newContext(), () => work(als)),
    cls: () => cls.run(newContext(), () => work(cls)),
  };
  const samples: Record<string, number[]> = { none: [], als: [], cls: [] };
  for (let r = 0; r < ROUNDS; r++) for (const [k, fn] of Object.entries(sides)) samples[k].push(await timeOps(N, fn));
  const none = median(samples.none);
  const out = { none_us: round(none, 3), als_us: round(median(samples.als), 3), cls_us: round(median(samples.cls), 3), als_ratio: round(median(samples.als) / none, 2), cls_ratio: round(median(samples.cls) / none, 2) };
  console.log(`context: none ${out.none_us} µs, AsyncLocalStorage ${out.als_us} µs (×${out.als_ratio}), cls-hooked ${out.cls_us} µs (×${out.cls_ratio}) per request (${N} sequential)`);
  return out;
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = { bench: 'producer' };
  if (!ONLY || ONLY === 'sqlite') {
    const r = await benchSqlite();
    if (SIDE) return;
    Object.assign(result, keys('sqlite', r), { sqlite_target: 1.35 });
  }
  if (!ONLY || ONLY === 'postgres') {
    Object.assign(result, keys('postgres', await benchPostgres()), { postgres_target: 1.25 }, netInfo);
  }
  // Last: cls-hooked installs process-wide async hooks once loaded, which would slow everything after it.
  if (!ONLY || ONLY === 'context') {
    const c = await benchContext();
    Object.assign(result, { context_als_ratio: c.als_ratio, context_cls_hooked_ratio: c.cls_ratio, context_none_us: c.none_us });
  }
  result.added_vs_floor_target = 1.5;
  result.rounds = ROUNDS;
  result.loadavg_1m = loadavg()[0];
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
