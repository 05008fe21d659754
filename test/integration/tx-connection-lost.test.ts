/**
 * Issue 10, case 8: a transaction whose database connection is killed under it (pg_terminate_backend of
 * its own backend on the real PostgreSQL: the same error a restart gives, without touching the shared
 * server) surfaces the connection's failure to the caller, not TypeORM's QueryRunnerAlreadyReleasedError,
 * and tmm logs no "rollback failed" for it.
 */
import { TmmError, TypeOrmTransactionManager } from '../../src/internal';
import { CapturingLogger } from '../support/broker';
import { TestDatabase, createTestDatabase } from '../support/databases';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('postgres');
});
afterAll(async () => db?.dispose());

it('a transaction whose connection is terminated fails with the connection error and no rollback failure', async () => {
  const logger = new CapturingLogger();
  const tm = new TypeOrmTransactionManager(db.dataSource, { logger });
  const errors: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    try {
      await tm.run(async () => {
        const [{ pid }] = (await tm.manager.query('SELECT pg_backend_pid() AS pid')) as { pid: number }[];
        await db.dataSource.query('SELECT pg_terminate_backend($1)', [pid]);
        await new Promise((r) => setTimeout(r, 100));
        await tm.manager.query('SELECT 1');
        await tm.manager.query('SELECT 2');
      });
      errors.push(undefined);
    } catch (e) {
      errors.push(e);
    }
  }
  const described = errors.map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)));
  process.stdout.write(`[tx-connection-lost] ${JSON.stringify(described)}\n`);
  for (const e of errors) {
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).name).not.toBe('QueryRunnerAlreadyReleasedError');
    expect(String((e as Error).message)).toMatch(/terminat|connection/i);
  }
  expect(logger.lines.filter((l) => l.message === 'rollback failed')).toEqual([]);
  // The DataSource still works afterwards.
  expect(await db.dataSource.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  for (const e of errors) expect(e).toMatchObject({ code: 'TMM_DATABASE_CONNECTION_LOST' });
  expect(errors.every((e) => e instanceof TmmError)).toBe(true);
});
