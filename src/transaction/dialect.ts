import type { DataSource } from 'typeorm';
import { NotConfiguredError, UnsupportedDatabaseError } from '../errors';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

/** Maps a TypeORM DataSource to the SQL dialect tmm writes for it. */
export function dialectOf(dataSource: DataSource): Dialect {
  if (!dataSource || typeof dataSource !== 'object' || !('options' in dataSource)) {
    throw new NotConfiguredError('a TypeORM DataSource is required (got ' + (dataSource === undefined ? 'undefined' : typeof dataSource) + ')');
  }
  const type = String(dataSource.options.type);
  switch (type) {
    case 'better-sqlite3':
    case 'sqlite':
      return 'sqlite';
    case 'postgres':
      return 'postgres';
    case 'mysql':
    case 'mariadb':
      return 'mysql';
    default:
      throw new UnsupportedDatabaseError(type);
  }
}
