import { resolve } from 'node:path';
import { DataSource } from 'typeorm';
import { redactSecrets } from '../redactSecrets';
import { CliExit, ExitCode } from './ExitCode';

/**
 * A DataSource from a database URL: `sqlite:./app.sqlite` (better-sqlite3), `postgres://user:pw@host/db`,
 * `mysql://…` or `mariadb://…`. `schema` (PostgreSQL) sets the search_path.
 */
export function dataSourceFromUrl(url: string, options: { schema?: string } = {}): DataSource {
  const lower = url.toLowerCase();
  if (lower.startsWith('sqlite:') || lower.startsWith('file:')) {
    const path = url.replace(/^(sqlite|file):(\/\/)?/i, '');
    if (!path) throw new CliExit(ExitCode.Usage, 'the sqlite URL names no file (sqlite:./path/to/db.sqlite)');
    return new DataSource({ type: 'better-sqlite3', database: resolve(path) });
  }
  if (lower.startsWith('postgres://') || lower.startsWith('postgresql://')) {
    return new DataSource({
      type: 'postgres',
      url,
      poolSize: 4,
      ...(options.schema ? { schema: options.schema, extra: { options: `-c search_path=${options.schema}` } } : {}),
    });
  }
  if (lower.startsWith('mysql://') || lower.startsWith('mariadb://')) {
    return new DataSource({ type: 'mariadb', url: url.replace(/^mariadb:/i, 'mysql:'), poolSize: 4 });
  }
  throw new CliExit(ExitCode.Usage, `unsupported database URL ${redactSecrets(url)}: use sqlite:PATH, postgres://…, mysql://… or mariadb://…`);
}

export async function openDatabase(url: string | undefined, options: { schema?: string } = {}): Promise<DataSource> {
  if (!url) throw new CliExit(ExitCode.Unavailable, 'no database: give --db URL or set TMM_DB_URL (e.g. sqlite:./app.sqlite, postgres://user@host/db)');
  const ds = dataSourceFromUrl(url, options);
  try {
    await ds.initialize();
  } catch (e) {
    throw new CliExit(ExitCode.Unavailable, `cannot connect to ${redactSecrets(url)}: ${redactSecrets((e as Error).message)}`);
  }
  return ds;
}
