import { type BeforeApplicationShutdown, type DynamicModule, Inject, Injectable, Module, type OnApplicationBootstrap, type Provider } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, ModuleRef } from '@nestjs/core';
import { DataSource } from 'typeorm';
import type { TmmAdmin } from '../admin/TmmAdmin';
import { ConfigurationError } from '../errors';
import { MessageProducer } from '../outbox/MessageProducer';
import { Tmm } from '../runtime/Tmm';
import { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import { nestConsumerSource } from './nestConsumerSource';
import { TmmHealthIndicator } from './TmmHealthIndicator';
import { TMM_MODULE_OPTIONS, type TmmModuleAsyncOptions, type TmmModuleOptions } from './tokens';

/**
 * The admin (and with it fastify and prom-client, optional peers) is loaded only for a module that asks for
 * it: an app without `admin` needs neither installed. A missing one is named (TMM_MISSING_PEER).
 */
function loadAdmin(): typeof import('../admin') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../admin') as typeof import('../admin');
}

/** Builds the Tmm from the module options, taking the DataSource from the container unless given. */
async function createTmm(options: TmmModuleOptions, moduleRef: ModuleRef): Promise<Tmm> {
  const { dataSource: given, dataSourceToken, admin: _admin, isGlobal: _global, ...rest } = options;
  let dataSource = given;
  if (!dataSource) {
    const token = dataSourceToken ?? DataSource;
    try {
      dataSource = moduleRef.get(token as never, { strict: false }) as DataSource;
    } catch (e) {
      throw new ConfigurationError(
        'dataSource',
        `no DataSource given and none found in the Nest container under ${typeof token === 'function' ? token.name : String(token)} ` +
          `(import TypeOrmModule.forRoot() before TmmModule, or pass dataSource / dataSourceToken): ${(e as Error).message}`,
      );
    }
  }
  return new Tmm({ ...rest, dataSource });
}

/**
 * Starts tmm when the application has bootstrapped (consumers found through DiscoveryService) and drains it
 * in beforeApplicationShutdown (call `app.enableShutdownHooks()`): the consumers stop taking deliveries
 * and their running handlers finish, the relay finishes its confirms, then the connections close.
 */
@Injectable()
export class TmmLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(
    @Inject(Tmm) private readonly tmm: Tmm,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
    @Inject(TMM_MODULE_OPTIONS) private readonly options: TmmModuleOptions,
  ) {}

  private admin: TmmAdmin | undefined;

  async onApplicationBootstrap(): Promise<void> {
    this.tmm.consumers.addSource(nestConsumerSource(this.discovery, this.moduleRef, this.tmm.logger));
    await this.tmm.start();
    if (this.options.admin) {
      const admin: TmmAdmin = this.moduleRef.get(loadAdmin().TmmAdmin, { strict: false });
      this.admin = admin;
      await admin.start();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.admin?.stop();
    await this.tmm.stop();
  }
}

/**
 * tmm for NestJS (`tmm/nestjs`). `TmmModule.forRoot(options)` or `forRootAsync({ imports, inject,
 * useFactory })`; provides Tmm, MessageProducer, TypeOrmTransactionManager, TmmHealthIndicator (and
 * TmmAdmin with `admin` options) by class. @Consumer methods on ordinary providers are found by Nest's
 * DiscoveryService; @Transactional / @TransactionalMessage work on any provider once tmm has started.
 */
@Module({})
export class TmmModule {
  static forRoot(options: TmmModuleOptions): DynamicModule {
    return TmmModule.build([{ provide: TMM_MODULE_OPTIONS, useValue: options }], [], options.isGlobal ?? false, options.admin !== undefined);
  }

  /** The factory's result is the options; `admin` must be decided here (`withAdmin`) as providers are static. */
  static forRootAsync(options: TmmModuleAsyncOptions & { withAdmin?: boolean }): DynamicModule {
    if (typeof options?.useFactory !== 'function') throw new ConfigurationError('TmmModule.forRootAsync.useFactory', 'must be a function returning the tmm options');
    return TmmModule.build(
      [{ provide: TMM_MODULE_OPTIONS, useFactory: options.useFactory as (...args: unknown[]) => unknown, inject: (options.inject ?? []) as never[] }],
      options.imports ?? [],
      options.isGlobal ?? false,
      options.withAdmin ?? false,
    );
  }

  private static build(optionsProviders: Provider[], imports: unknown[], global: boolean, withAdmin: boolean): DynamicModule {
    const providers: Provider[] = [
      ...optionsProviders,
      { provide: Tmm, useFactory: createTmm, inject: [TMM_MODULE_OPTIONS, ModuleRef] },
      { provide: MessageProducer, useFactory: (tmm: Tmm) => tmm.producer, inject: [Tmm] },
      { provide: TypeOrmTransactionManager, useFactory: (tmm: Tmm) => tmm.transactions, inject: [Tmm] },
      TmmHealthIndicator,
      TmmLifecycle,
    ];
    const exported: Provider[] = [Tmm, MessageProducer, TypeOrmTransactionManager, TmmHealthIndicator] as never[];
    if (withAdmin) {
      const { TmmAdmin } = loadAdmin();
      providers.push({
        provide: TmmAdmin,
        useFactory: (tmm: Tmm, o: TmmModuleOptions) => {
          if (!o.admin) throw new ConfigurationError('admin', 'forRootAsync({ withAdmin: true }) needs the factory to return admin options');
          return new TmmAdmin(tmm, o.admin);
        },
        inject: [Tmm, TMM_MODULE_OPTIONS],
      });
      exported.push(TmmAdmin as never);
    }
    return { module: TmmModule, global, imports: [DiscoveryModule, ...(imports as never[])], providers, exports: exported as never[] };
  }
}
