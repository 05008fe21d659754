import { ContainerModule } from 'inversify';
import { TmmOptions, validateTmmOptions } from '../config/TmmOptions';
import { Tmm } from '../runtime/Tmm';
import { containerConsumerSource } from './containerConsumerSource';
import { TMM } from './tokens';

/**
 * The inversify ContainerModule for one tmm instance. Options are validated here, when the module is
 * created (an unknown key throws ConfigurationError naming its path), so a misconfiguration fails at
 * wiring time rather than on the first message. Binds the Tmm instance and each of its components as
 * constants under the `TMM` tokens. When the Tmm is first resolved it is given the container, and its
 * start() finds the @Consumer classes bound there (under their own class) and starts their consumers.
 *
 * ```ts
 * await container.load(createTmmModule({ dataSource }));
 * await container.get<Tmm>(TMM.Tmm).start();
 * ```
 */
export function createTmmModule(options: TmmOptions): ContainerModule {
  const tmm = new Tmm(validateTmmOptions(options));
  return new ContainerModule(({ bind, onActivation }) => {
    bind(TMM.Tmm).toConstantValue(tmm);
    bind(TMM.DataSource).toConstantValue(tmm.dataSource);
    bind(TMM.ContextStore).toConstantValue(tmm.contextStore);
    bind(TMM.TransactionManager).toConstantValue(tmm.transactions);
    bind(TMM.MessageProducer).toConstantValue(tmm.producer);
    bind(TMM.Transport).toConstantValue(tmm.transport);
    bind(TMM.OutboxStore).toConstantValue(tmm.outbox);
    bind(TMM.Dispatcher).toConstantValue(tmm.dispatcher);
    bind(TMM.ConsumerRunner).toConstantValue(tmm.consumers);
    bind(TMM.InboxStore).toConstantValue(tmm.inbox);
    // The first resolution of the Tmm hands it the container, where start() looks for @Consumer classes.
    onActivation(TMM.Tmm, (context, resolved: Tmm) => {
      resolved.consumers.addSource(containerConsumerSource(context, resolved.logger));
      return resolved;
    });
  });
}
