import type { AdminOptions } from '../admin/AdminOptions';
import type { TmmAdmin } from '../admin/TmmAdmin';
import type { Tmm } from '../runtime/Tmm';
import type { TmmContainerModule } from './createTmmModule';
import { makeContainerModule } from './inversifyCompat';
import { TMM } from './tokens';

/**
 * The inversify ContainerModule for TMM-ADMIN (inversify 6, 7 or 8). Load it after createTmmModule: the
 * TmmAdmin is built on the container's `TMM.Tmm` when first resolved, once (singleton). Options are
 * validated when the module is created (a bad or missing option throws ConfigurationError naming its
 * `admin.` path). The admin's code (and so fastify and prom-client) is loaded only here, not by
 * `tmm/inversify` itself. Binds `TMM.Admin` and its parts `TMM.DeadLetterService`, `TMM.DeadLetterStore`,
 * `TMM.AuditTrail`. Starting and stopping stay the app's: `admin.start()` after `tmm.start()`,
 * `admin.stop()` before `tmm.stop()`.
 */
export function createTmmAdminModule(options: AdminOptions): TmmContainerModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const admin = require('../admin') as typeof import('../admin');
  admin.resolveAdminOptions(options); // validate now; TmmAdmin resolves them again when built
  return makeContainerModule('createTmmAdminModule (tmm/inversify)', ({ bindDynamic }) => {
    bindDynamic(TMM.Admin, (lookup) => new admin.TmmAdmin(lookup.get<Tmm>(TMM.Tmm), options));
    bindDynamic(TMM.DeadLetterService, (lookup) => lookup.get<TmmAdmin>(TMM.Admin).service);
    bindDynamic(TMM.DeadLetterStore, (lookup) => lookup.get<TmmAdmin>(TMM.Admin).deadLetters);
    bindDynamic(TMM.AuditTrail, (lookup) => lookup.get<TmmAdmin>(TMM.Admin).audit);
  });
}
