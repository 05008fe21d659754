import { randomBytes } from 'node:crypto';
import { DataSource, DataSourceOptions } from 'typeorm';

/** The local PostgreSQL of the benchmarks (overridable like the test suites' TMM_PG_* variables). */
export const pgConnection = {
  host: process.env.TMM_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.TMM_PG_PORT ?? 5432),
  username: process.env.TMM_PG_USER ?? 'postgres',
  database: process.env.TMM_PG_DATABASE ?? 'test',
};

export interface BenchSchema {
  name: string;
  /** Options of a DataSource confined to the schema (search_path), for a second process or pool. */
  options: DataSourceOptions;
  dataSource: DataSource;
  /** Destroys the DataSource and drops the schema. */
  dispose(): Promise<void>;
}

/** A fresh schema for one benchmark run, so runs never see each other's rows (or the test suites'). */
export async function createBenchSchema(prefix: string, extra: { entities?: DataSourceOptions['entities']; poolSize?: number } = {}): Promise<BenchSchema> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new DataSource({ type: 'postgres', ...pgConnection });
  await admin.initialize();
  await admin.query(`CREATE SCHEMA ${name}`);
  const entities = extra.entities ?? [];
  const options: DataSourceOptions = {
    type: 'postgres',
    ...pgConnection,
    schema: name,
    entities,
    synchronize: Array.isArray(entities) ? entities.length > 0 : Object.keys(entities).length > 0,
    poolSize: extra.poolSize ?? 10,
    extra: { options: `-c search_path=${name}` },
  };
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  return {
    name,
    options,
    dataSource,
    async dispose() {
      if (dataSource.isInitialized) await dataSource.destroy();
      await admin.query(`DROP SCHEMA ${name} CASCADE`);
      await admin.destroy();
    },
  };
}
