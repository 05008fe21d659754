import type { DataSource } from 'typeorm';
import type { AdminOptions } from '../admin/AdminOptions';
import type { TmmOptions } from '../config/TmmOptions';

/** Injection token of the module's options (TmmModuleOptions). */
export const TMM_MODULE_OPTIONS = Symbol.for('tmm.nestjs.options');

/** What the Nest container knows as a provider token (class, string, symbol). */
export type NestToken = string | symbol | Function;

/**
 * TmmOptions with the DataSource either given or taken from the Nest container: by default the
 * `DataSource` class token that `@nestjs/typeorm`'s `TypeOrmModule.forRoot()` registers (one DataSource,
 * no second TypeORM); `dataSourceToken` names another (`getDataSourceToken('orders')`, a custom provider).
 */
export type TmmModuleOptions = Omit<TmmOptions, 'dataSource'> & {
  dataSource?: DataSource;
  dataSourceToken?: NestToken;
  /** Also provide TmmAdmin (the admin API; started and stopped with the app). */
  admin?: AdminOptions;
  /** Register the module globally (its providers injectable everywhere without importing it). */
  isGlobal?: boolean;
};

export interface TmmModuleAsyncOptions {
  imports?: unknown[];
  inject?: NestToken[];
  useFactory: (...args: never[]) => Omit<TmmModuleOptions, 'isGlobal'> | Promise<Omit<TmmModuleOptions, 'isGlobal'>>;
  isGlobal?: boolean;
}
