import { TmmOptions, resolveTmmOptions } from '../config/TmmOptions';
import { AsyncLocalContextStore } from '../context/AsyncLocalContextStore';
import { ClsHookedContextStore } from '../context/ClsHookedContextStore';
import type { ContextStore } from '../context/ContextStore';
import { Tmm, TmmComponents } from '../runtime/Tmm';
import { MemoryTransport } from '../transport/memory/MemoryTransport';
import type { Transport } from '../transport/Transport';
import { containerConsumerSource } from './containerConsumerSource';
import { makeContainerModule } from './inversifyCompat';
import { TMM } from './tokens';

/** The ContainerModule type of the app's own inversify (6, 7 or 8): what `container.load()` takes. */
export type TmmContainerModule = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The inversify ContainerModule for one tmm instance; works with inversify 6, 7 and 8 (the app's own,
 * a peer dependency). Options are validated here, when the module is created (an unknown key throws
 * ConfigurationError naming its path), so a misconfiguration fails at wiring time.
 *
 * Binds, under the typed `TMM` tokens: `TMM.Transport` (from `options.transport`; rebind it before the Tmm
 * is first resolved to use another one), `TMM.ContextStore` (likewise, when bound by the app), and the Tmm
 * (built from the container when first resolved, once) with its parts `TMM.TransactionManager`,
 * `TMM.MessageProducer`, `TMM.ConsumerRunner`, `TMM.OutboxStore`, `TMM.InboxStore`, `TMM.DataSource`,
 * `TMM.Logger`. The Tmm's start() finds the @Consumer classes bound in the container under their own class.
 *
 * ```ts
 * await container.load(createTmmModule({ dataSource }));   // inversify 6: container.load(...) (sync)
 * const tmm = container.get(TMM.Tmm);
 * await tmm.start();
 * ```
 */
export function createTmmModule(options: TmmOptions, components: Omit<TmmComponents, 'transport'> = {}): TmmContainerModule {
  const resolved = resolveTmmOptions(options);
  return makeContainerModule('createTmmModule (tmm/inversify)', ({ bind, bindDynamic }) => {
    bindDynamic(TMM.Transport, (): Transport => (resolved.transport === 'memory' ? new MemoryTransport() : resolved.transport));
    bindDynamic(
      TMM.ContextStore,
      (): ContextStore =>
        components.contextStore ??
        (resolved.context === 'async-local-storage' ? new AsyncLocalContextStore() : resolved.context === 'cls-hooked' ? new ClsHookedContextStore() : resolved.context),
    );
    bindDynamic(TMM.Tmm, (lookup) => {
      const tmm = new Tmm(options, {
        ...components,
        transport: lookup.get<Transport>(TMM.Transport),
        contextStore: lookup.get<ContextStore>(TMM.ContextStore),
      });
      tmm.consumers.addSource(containerConsumerSource(lookup, tmm.logger));
      return tmm;
    });
    bind(TMM.DataSource).toConstantValue(resolved.dataSource);
    const part = (token: symbol, pick: (tmm: Tmm) => unknown) => bindDynamic(token, (lookup) => pick(lookup.get<Tmm>(TMM.Tmm)));
    part(TMM.TransactionManager, (t) => t.transactions);
    part(TMM.MessageProducer, (t) => t.producer);
    part(TMM.ConsumerRunner, (t) => t.consumers);
    part(TMM.OutboxStore, (t) => t.outbox);
    part(TMM.InboxStore, (t) => t.inbox);
    part(TMM.Logger, (t) => t.logger);
  });
}
