/**
 * Producer benchmark. Same run, alternating rounds, medians:
 *  - a transaction that inserts one business row and sends one message through @TransactionalMessage
 *    (outbox row + after-commit publish on the in-memory transport + batched mark-delivered), against
 *  - the same @Transactional method with the business insert only,
 * on SQLite (better-sqlite3, WAL file) and PostgreSQL; plus the async-context overhead of the
 * AsyncLocalStorage and cls-hooked adapters against no context. Last line: one JSON object.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IsInt, IsString } from 'class-validator';
import { Column, DataSource, Entity, PrimaryColumn } from 'typeorm';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { uuidv7 } from 'uuidv7';
import { AsyncLocalContextStore, ClsHookedContextStore, ContextStore, MIGRATIONS, Tmm, newContext } from '../../src/internal';
import { MessageContract, Transactional, TransactionalMessage } from 'tmm/decorators';
import { median, round, timeOps } from '../support/stats';

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

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
/** For profiling one part: BENCH_ONLY=sqlite|postgres|context (the JSON line then has only that part). */
const ONLY = process.env.BENCH_ONLY;

async function benchDb(label: string, dataSource: DataSource, ops: number): Promise<{ ratio: number; base_us: number; msg_us: number }> {
  const tmm = new Tmm({ dataSource, name: 'bench', transport: 'memory', logger: 'silent', dispatcher: { deleteDelivered: process.env.BENCH_KEEP !== '1' } });
  await tmm.start();
  await tmm.transport.declare({ queues: [{ name: 'sink', bindings: [{ exchange: 'tmm.events', routingKey: '#' }] }] });
  await tmm.transport.subscribe({ queue: { name: 'sink' }, prefetch: 1000 }, (d) => d.ack());
  const svc = new Service(tmm);
  const base: number[] = [];
  const msg: number[] = [];
  let n = 0;
  const id = () => `${label}-${n++}-${randomBytes(4).toString('hex')}`;
  // Warm-up: JIT, connection pool, statement caches.
  for (let i = 0; i < 50; i++) {
    await svc.insertOnly(id());
    await svc.insertAndSend(id());
  }
  await tmm.dispatcher.idle();
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first so drift (cache, WAL growth) does not favour one side.
    const pair = r % 2 === 0 ? (['base', 'msg'] as const) : (['msg', 'base'] as const);
    for (const side of pair) {
      if (side === 'base') base.push(await timeOps(ops, () => svc.insertOnly(id())));
      else {
        // The publish and mark-delivered work after commit belongs to this side's cost: wait for it.
        const start = process.hrtime.bigint();
        for (let i = 0; i < ops; i++) await svc.insertAndSend(id());
        await tmm.dispatcher.flush();
        msg.push(Number(process.hrtime.bigint() - start) / 1000 / ops);
      }
    }
    await tmm.dispatcher.idle();
  }
  await tmm.dispatcher.flush();
  const counts = await tmm.outbox.countByStatus();
  await tmm.stop();
  // Every message published and its row marked (deleted by default): the fast side did all its work.
  const expected = ROUNDS * ops + 50;
  const { published, marked } = tmm.dispatcher.stats;
  if (published !== expected || marked !== expected || counts.PENDING !== 0 || counts.DEAD !== 0) {
    throw new Error(`${label}: expected ${expected} published and marked, got ${published}/${marked}, rows ${JSON.stringify(counts)}`);
  }
  const b = median(base);
  const m = median(msg);
  console.log(`${label}: insert only ${b.toFixed(0)} µs/tx, insert + message ${m.toFixed(0)} µs/tx, ratio ${(m / b).toFixed(3)} (medians of ${ROUNDS} rounds × ${ops})`);
  return { ratio: round(m / b), base_us: round(b, 1), msg_us: round(m, 1) };
}

/**
 * The floor: the same database work tmm does (business insert; outbox insert; one DELETE per 200 delivered
 * ids) issued straight through the driver, no ORM, no tmm — how far below the target ratio the database
 * itself allows tmm to get.
 */
async function floorRatio(label: string, exec: (sql: string, params: unknown[]) => Promise<unknown>, p: (n: number) => string, ops: number): Promise<number> {
  let n = 0;
  const business = `INSERT INTO bench_order (id, amount) VALUES (${p(1)}, ${p(2)})`;
  const cols = ['id', 'topic', 'exchange', 'routing_key', 'payload', 'headers', 'status', 'attempts', 'available_at', 'lease_owner', 'lease_until', 'ordering_key', 'created_at'];
  const outbox = `INSERT INTO tmm_outbox (${cols.join(', ')}) VALUES (${cols.map((_c, i) => p(i + 1)).join(', ')})`;
  const delivered: string[] = [];
  const base = async () => {
    await exec('BEGIN', []);
    await exec(business, [`f-${label}-${n++}`, 1]);
    await exec('COMMIT', []);
  };
  const msg = async () => {
    const id = uuidv7();
    const now = Date.now();
    await exec('BEGIN', []);
    await exec(business, [`f-${label}-${n++}`, 1]);
    await exec(outbox, [id, 'bench.order-placed', 'tmm.events', 'bench.order-placed', '{"id":"x","amount":1}', '{"tmm-contract-version":1}', 'PENDING', 0, now, 'bench', now + 30_000, null, now]);
    await exec('COMMIT', []);
    delivered.push(id);
    if (delivered.length >= 200) {
      const ids = delivered.splice(0, delivered.length);
      await exec(`DELETE FROM tmm_outbox WHERE id IN (${ids.map((_v, i) => p(i + 1)).join(', ')})`, ids);
    }
  };
  for (let i = 0; i < 50; i++) (await base(), await msg());
  const b: number[] = [];
  const m: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    b.push(await timeOps(ops, base));
    m.push(await timeOps(ops, msg));
  }
  const ratio = median(m) / median(b);
  console.log(`${label} floor (raw driver, same statements): ${median(b).toFixed(0)} µs vs ${median(m).toFixed(0)} µs, ratio ${ratio.toFixed(3)}`);
  return round(ratio);
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

async function benchSqlite(): Promise<{ ratio: number; base_us: number; msg_us: number; floor: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tmm-bench-'));
  const sqlite = new DataSource({ type: 'better-sqlite3', database: join(dir, 'bench.sqlite'), entities: [BenchOrder], synchronize: true });
  await sqlite.initialize();
  try {
    const result = await benchDb('sqlite', sqlite, Number(process.env.BENCH_SQLITE_OPS ?? 400));
    const raw = new Database(join(dir, 'floor.sqlite'));
    raw.pragma('journal_mode = WAL');
    raw.exec('CREATE TABLE bench_order (id varchar PRIMARY KEY NOT NULL, amount integer NOT NULL)');
    for (const m of MIGRATIONS.filter((x) => x.component === 'outbox')) for (const sql of m.statements.sqlite) raw.exec(sql);
    const floor = await floorRatio('sqlite', async (sql, params) => raw.prepare(sql).run(...params), () => '?', Number(process.env.BENCH_SQLITE_OPS ?? 400));
    raw.close();
    return { ...result, floor };
  } finally {
    await sqlite.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchPostgres(): Promise<{ ratio: number; base_us: number; msg_us: number; floor: number }> {
  const schema = `tmm_bench_${randomBytes(4).toString('hex')}`;
  const pgConn = { host: process.env.TMM_PG_HOST ?? '127.0.0.1', port: Number(process.env.TMM_PG_PORT ?? 5432), username: process.env.TMM_PG_USER ?? 'postgres', database: process.env.TMM_PG_DATABASE ?? 'test' };
  const admin = new DataSource({ type: 'postgres', ...pgConn });
  await admin.initialize();
  await admin.query(`CREATE SCHEMA ${schema}`);
  try {
    const pg = new DataSource({ type: 'postgres', ...pgConn, schema, entities: [BenchOrder], synchronize: true, extra: { options: `-c search_path=${schema}` } });
    await pg.initialize();
    try {
      const result = await benchDb('postgres', pg, Number(process.env.BENCH_PG_OPS ?? 300));
      const client = new Client({ host: pgConn.host, port: pgConn.port, user: pgConn.username, database: pgConn.database, options: `-c search_path=${schema}` });
      await client.connect();
      try {
        const floor = await floorRatio('postgres', (sql, params) => client.query(sql, params), (n) => `$${n}`, Number(process.env.BENCH_PG_OPS ?? 300));
        return { ...result, floor };
      } finally {
        await client.end();
      }
    } finally {
      await pg.destroy();
    }
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.destroy();
  }
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = { bench: 'producer' };
  if (!ONLY || ONLY === 'sqlite') {
    const r = await benchSqlite();
    Object.assign(result, { sqlite_ratio: r.ratio, sqlite_target: 1.35, sqlite_floor_ratio: r.floor, sqlite_base_us: r.base_us, sqlite_msg_us: r.msg_us });
  }
  if (!ONLY || ONLY === 'postgres') {
    const r = await benchPostgres();
    Object.assign(result, { postgres_ratio: r.ratio, postgres_target: 1.25, postgres_floor_ratio: r.floor, postgres_base_us: r.base_us, postgres_msg_us: r.msg_us });
  }
  // Last: cls-hooked installs process-wide async hooks once loaded, which would slow everything after it.
  if (!ONLY || ONLY === 'context') {
    const c = await benchContext();
    Object.assign(result, { context_als_ratio: c.als_ratio, context_cls_hooked_ratio: c.cls_ratio, context_none_us: c.none_us });
  }
  result.rounds = ROUNDS;
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
