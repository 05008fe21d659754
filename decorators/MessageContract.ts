import { ConfigurationError } from '../src/errors/TmmError';
import { defineContractMetadata } from '../src/metadata/keys';

export interface MessageContractOptions {
  /** Logical topic, also the default routing key: dot-separated words, e.g. `order.paid`. */
  topic: string;
  /** Payload schema version (positive integer, default 1), sent as the `tmm-contract-version` header. */
  version?: number;
  /** Exchange for this contract; defaults to the producer's `defaultExchange`. */
  exchange?: string;
}

const TOPIC = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * Marks a class as a message contract. Its fields carry class-validator rules, checked on every send. The
 * class is also registered by topic and version in the process-wide contract registry (findContracts), which
 * the admin uses to validate edited dead-letter payloads when no local consumer knows the contract.
 */
export function MessageContract(options: MessageContractOptions): ClassDecorator {
  if (!options || typeof options.topic !== 'string' || !TOPIC.test(options.topic) || options.topic.length > 255) {
    throw new ConfigurationError('MessageContract.topic', `must be dot-separated words (letters, digits, _ and -), got ${JSON.stringify(options?.topic)}`);
  }
  const version = options.version ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    throw new ConfigurationError('MessageContract.version', `must be a positive integer, got ${JSON.stringify(options.version)}`);
  }
  return (target) => {
    defineContractMetadata(target, { topic: options.topic, version, exchange: options.exchange });
  };
}
