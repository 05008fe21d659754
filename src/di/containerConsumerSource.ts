import type { ConsumerSource } from '../consumer/ConsumerSource';
import { ConsumerDefinitionError } from '../errors/TmmError';
import type { Logger } from '../logging/Logger';
import { getConsumerClasses } from '../metadata/keys';
import type { Lookup } from './inversifyCompat';

/**
 * The container scan: each class that has @Consumer methods is looked up in the container under its own
 * class (`container.bind(OrderHandlers).toSelf()`), never autobound; the instances found are the
 * consumers. A decorated class that is not bound is reported (warn) and skipped — that is how a consumer
 * can be left out of one process (say, an API node) while another runs it.
 */
export function containerConsumerSource(lookup: Lookup, logger: Logger): ConsumerSource {
  const find = (type: Function): unknown => {
    try {
      return lookup.getOptional(type);
    } catch (e) {
      throw new ConsumerDefinitionError(type.name, `could not be resolved from the inversify container: ${(e as Error).message}`);
    }
  };
  return {
    instances: () => {
      const found: object[] = [];
      for (const type of getConsumerClasses()) {
        const instance = find(type);
        if (instance === undefined) {
          logger.warn('class has @Consumer methods but is not bound in the container under its class; its consumers are not started', {
            class: type.name,
            hint: `container.bind(${type.name}).toSelf()`,
          });
          continue;
        }
        if (instance !== null && typeof instance === 'object') found.push(instance);
      }
      return found;
    },
    resolve: (type) => find(type),
  };
}
