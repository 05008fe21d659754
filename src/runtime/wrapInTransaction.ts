import { TransactionOptions } from '../transaction/Propagation';
import { SenderKind, chooseSender } from '../outbox/SenderStore';
import { TmmRegistry } from './TmmRegistry';

export interface WrapOptions extends TransactionOptions {
  /** Name of the tmm instance (DataSource) to use; `default` when omitted. */
  dataSource?: string;
  /** Sender store for the messages of this transaction (`outbox` or `log`); default the instance's `sender`. */
  sender?: SenderKind;
}

/**
 * Wraps a function so that each call runs through the named tmm instance's TransactionManager with the
 * given propagation. The one function @Transactional and @TransactionalMessage delegate to; the instance
 * is looked up at call time, so decorated classes can be defined before tmm starts.
 */
export function wrapInTransaction<A extends unknown[], R>(
  fn: (...args: A) => R | Promise<R>,
  options: WrapOptions = {},
): (...args: A) => Promise<R> {
  const { dataSource, sender, ...txOptions } = options;
  const name = txOptions.name ?? fn.name ?? 'anonymous';
  return function (this: unknown, ...args: A): Promise<R> {
    let tmm;
    try {
      tmm = TmmRegistry.get(dataSource, name);
    } catch (e) {
      return Promise.reject(e);
    }
    const t = tmm;
    const body = sender === undefined ? () => fn.apply(this, args) : () => {
      const scope = t.transactions.current();
      if (scope) chooseSender(scope, sender, name);
      return fn.apply(this, args);
    };
    return tmm.transactions.run(body, { ...txOptions, name });
  };
}
