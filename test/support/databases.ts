import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, DataSourceOptions } from 'typeorm';

declare const TMM_TYPEORM_LANE: string | undefined;

/** Which TypeORM lane this jest run is (set by jest.typeorm03.config.js). */
export const typeormLane: 'typeorm1' | 'typeorm03' =
  typeof TMM_TYPEORM_LANE !== 'undefined' && TMM_TYPEORM_LANE === 'typeorm03' ? 'typeorm03' : 'typeorm1';

export type DbKind = 'sqlite' | 'postgres' | 'mariadb';

export interface DbLane {
  /** Label for describe.each. */
  name: string;
  kind: DbKind;
}

/** The real databases each contract/integration suite runs on, for this lane. */
export function dbLanes(): DbLane[] {
  if (typeormLane === 'typeorm03') return [{ name: 'sqlite (typeorm 0.3 + sqlite3)', kind: 'sqlite' }];
  return [
    { name: 'sqlite (better-sqlite3)', kind: 'sqlite' },
    { name: 'postgres', kind: 'postgres' },
    { name: 'mariadb', kind: 'mariadb' },
  ];
}

export interface TestDatabase {
  dataSource: DataSource;
  /** Drops the schema / database / file created for this test file. */
  dispose(): Promise<void>;
}

const PG = { host: process.env.TMM_PG_HOST ?? '127.0.0.1', port: Number(process.env.TMM_PG_PORT ?? 5432), username: process.env.TMM_PG_USER ?? 'postgres', database: process.env.TMM_PG_DATABASE ?? 'test' };
const MY = { host: process.env.TMM_MYSQL_HOST ?? '127.0.0.1', port: Number(process.env.TMM_MYSQL_PORT ?? 3306), username: process.env.TMM_MYSQL_USER ?? 'root', password: process.env.TMM_MYSQL_PASSWORD ?? '' };

/**
 * A fresh, isolated database for one test file: a temp SQLite file, a new PostgreSQL schema (via
 * search_path), or a new MariaDB database. `entities` are synchronized (they are the app's tables,
 * not tmm's, which go through migrate()).
 */
export async function createTestDatabase(kind: DbKind, entities: DataSourceOptions['entities'] = [], extra: { poolSize?: number; port?: number; subscribers?: DataSourceOptions['subscribers'] } = {}): Promise<TestDatabase> {
  const suffix = randomBytes(4).toString('hex');
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'tmm-test-'));
    const file = join(dir, 'test.sqlite');
    const dataSource = new DataSource({
      type: (typeormLane === 'typeorm03' ? 'sqlite' : 'better-sqlite3') as 'better-sqlite3',
      database: file,
      entities,
      synchronize: true,
    });
    await dataSource.initialize();
    return {
      dataSource,
      async dispose() {
        if (dataSource.isInitialized) await dataSource.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (kind === 'postgres') {
    const schema = `tmm_t_${suffix}`;
    const admin = new DataSource({ type: 'postgres', ...PG });
    await admin.initialize();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const dataSource = new DataSource({
      type: 'postgres',
      ...PG,
      ...(extra.port ? { port: extra.port } : {}),
      schema,
      entities,
      ...(extra.subscribers ? { subscribers: extra.subscribers } : {}),
      synchronize: true,
      poolSize: extra.poolSize ?? 10,
      extra: { options: `-c search_path=${schema}` },
    });
    await dataSource.initialize();
    return {
      dataSource,
      async dispose() {
        if (dataSource.isInitialized) await dataSource.destroy();
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await admin.destroy();
      },
    };
  }
  const database = `tmm_t_${suffix}`;
  const admin = new DataSource({ type: 'mariadb', ...MY });
  await admin.initialize();
  await admin.query(`CREATE DATABASE ${database}`);
  const dataSource = new DataSource({ type: 'mariadb', ...MY, database, entities, synchronize: true, poolSize: extra.poolSize ?? 10 });
  await dataSource.initialize();
  return {
    dataSource,
    async dispose() {
      if (dataSource.isInitialized) await dataSource.destroy();
      await admin.query(`DROP DATABASE ${database}`);
      await admin.destroy();
    },
  };
}
