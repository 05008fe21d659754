import { ContainerModule } from 'inversify';
import { AdminOptions, resolveAdminOptions } from '../admin/AdminOptions';
import { TmmAdmin } from '../admin/TmmAdmin';
import type { Tmm } from '../runtime/Tmm';
import { TMM } from './tokens';

/**
 * The inversify ContainerModule for TMM-ADMIN, exported from `tmm/admin` (so apps without the admin never
 * load fastify or prom-client). Load it after createTmmModule: the TmmAdmin is built on the container's
 * `TMM.Tmm` when first resolved, once (singleton). Options are validated when the module is created (a bad
 * or missing option throws ConfigurationError naming its `admin.` path), so a misconfiguration fails at
 * wiring time. Binds `TMM.Admin` and its parts `TMM.DeadLetterService`, `TMM.DeadLetterStore`, `TMM.AuditTrail`.
 * Starting and stopping stay the app's: `admin.start()` after `tmm.start()`, `admin.stop()` before `tmm.stop()`.
 *
 * ```ts
 * await container.load(createTmmModule({ dataSource }), createTmmAdminModule({ auth: { tokens: { ops: process.env.TMM_ADMIN_TOKEN! } } }));
 * await container.get<Tmm>(TMM.Tmm).start();
 * await container.get<TmmAdmin>(TMM.Admin).start();
 * ```
 */
export function createTmmAdminModule(options: AdminOptions): ContainerModule {
  resolveAdminOptions(options); // validate now; TmmAdmin resolves them again when built
  return new ContainerModule(({ bind }) => {
    bind(TMM.Admin)
      .toDynamicValue((context) => new TmmAdmin(context.get<Tmm>(TMM.Tmm), options))
      .inSingletonScope();
    bind(TMM.DeadLetterService).toDynamicValue((context) => context.get<TmmAdmin>(TMM.Admin).service);
    bind(TMM.DeadLetterStore).toDynamicValue((context) => context.get<TmmAdmin>(TMM.Admin).deadLetters);
    bind(TMM.AuditTrail).toDynamicValue((context) => context.get<TmmAdmin>(TMM.Admin).audit);
  });
}
