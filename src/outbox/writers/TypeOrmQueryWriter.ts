import type { QueryRunner } from 'typeorm';
import { PreparedWriter } from './PreparedWriter';

/** The fallback: TypeORM's own query path (any driver tmm has no adapter for; nothing prepared). */
export class TypeOrmQueryWriter implements PreparedWriter {
  readonly name = 'typeorm';

  async run(queryRunner: QueryRunner, sql: string, params: unknown[]): Promise<void> {
    await queryRunner.query(sql, params);
  }
}
