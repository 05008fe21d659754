import type { DiscoveryService, ModuleRef } from '@nestjs/core';
import type { ConsumerSource } from '../consumer/ConsumerSource';
import type { Logger } from '../logging/Logger';
import { getConsumerMethods } from '../metadata';

/**
 * The Nest container as a ConsumerSource: every provider instance (found through Nest's DiscoveryService)
 * whose class has @Consumer methods. Request-scoped or transient providers have no single instance to
 * consume with: they are reported (warn) and skipped. Interceptor classes are resolved from the container
 * (any module), else constructed by the explorer.
 */
export function nestConsumerSource(discovery: DiscoveryService, moduleRef: ModuleRef, logger: Logger): ConsumerSource {
  return {
    instances: () => {
      const found: object[] = [];
      for (const wrapper of discovery.getProviders()) {
        const type = wrapper.metatype as Function | undefined;
        const instance = wrapper.instance as unknown;
        const cls = instance !== null && typeof instance === 'object' ? (instance as object).constructor : type;
        if (typeof cls !== 'function' || getConsumerMethods(cls).length === 0) continue;
        if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) {
          logger.warn('a provider with @Consumer methods is request-scoped or transient; its consumers are not started (make it a singleton)', { class: cls.name });
          continue;
        }
        if (instance !== null && typeof instance === 'object' && !found.includes(instance)) found.push(instance);
      }
      return found;
    },
    resolve: (type) => {
      try {
        return moduleRef.get(type as never, { strict: false });
      } catch {
        return undefined;
      }
    },
  };
}
