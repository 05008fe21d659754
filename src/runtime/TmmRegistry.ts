import { NotConfiguredError } from '../errors';
import { processWide } from '../metadata/processWide';
import type { Tmm } from './Tmm';

/** Shared by every copy of tmm in the process (src/metadata/processWide.ts). */
const instances = processWide('instances', () => new Map<string, Tmm>());

/**
 * Where decorators find the running Tmm instance for a DataSource name (`default` unless configured).
 * Filled by `Tmm.start()`, emptied by `Tmm.stop()`.
 */
export const TmmRegistry = {
  register(tmm: Tmm): void {
    const existing = instances.get(tmm.name);
    if (existing && existing !== tmm) {
      throw new NotConfiguredError(`a tmm instance named "${tmm.name}" is already started; give the second one another name`);
    }
    instances.set(tmm.name, tmm);
  },
  unregister(tmm: Tmm): void {
    if (instances.get(tmm.name) === tmm) instances.delete(tmm.name);
  },
  /** @param what names the caller in the error, e.g. `PaymentService.pay`. */
  get(name: string | undefined, what: string): Tmm {
    const tmm = instances.get(name ?? 'default');
    if (!tmm) {
      throw new NotConfiguredError(
        `${what} needs tmm instance "${name ?? 'default'}", which is not started: load createTmmModule(...) into the container ` +
          'and await tmm.start() (or new Tmm({ dataSource }).start()) before calling it',
      );
    }
    return tmm;
  },
  find(name = 'default'): Tmm | undefined {
    return instances.get(name);
  },
};
