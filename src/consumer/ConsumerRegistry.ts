import { ConsumerDefinitionError } from '../errors';
import { type ConsumerDefinition, consumerTopology, retryHorizonMs } from './ConsumerDefinition';

/**
 * The consumers of one runner, checked together: every queue tmm declares for them (work, retry and
 * dead-letter queues) belongs to exactly one consumer, so two handlers never compete for one queue and
 * one consumer's dead-letter queue is never another's work queue; every idempotent consumer's retry
 * horizon fits in the inbox retention (a claim must outlive every copy of its message).
 */
export class ConsumerRegistry {
  private readonly byQueue = new Map<string, ConsumerDefinition>();

  constructor(
    readonly definitions: readonly ConsumerDefinition[],
    inboxRetentionMs: number,
  ) {
    const owners = new Map<string, { def: ConsumerDefinition; role: string }>();
    // Work queues first, so two consumers of one queue are reported as that (not as their shared DLQ).
    for (const def of definitions) {
      const other = owners.get(def.queue);
      if (other) {
        throw new ConsumerDefinitionError(
          `${def.name} (queue "${def.queue}")`,
          `queue "${def.queue}" is also consumed by ${other.def.name}${describeDifferences(other.def, def)}: give each consumer its own queue (one queue, one handler)`,
        );
      }
      owners.set(def.queue, { def, role: 'work queue' });
    }
    for (const def of definitions) {
      const { queues } = consumerTopology(def);
      for (const q of queues) {
        const role = q.name === def.queue ? 'work queue' : q.name === def.deadLetterQueue ? 'dead-letter queue' : 'retry queue';
        const other = owners.get(q.name);
        if (other && other.def !== def) {
          throw new ConsumerDefinitionError(`${def.name} (queue "${def.queue}")`, `its ${role} "${q.name}" is also the ${other.role} of ${other.def.name}`);
        }
        if (!other) owners.set(q.name, { def, role });
        if (q.name.length > 255) throw new ConsumerDefinitionError(`${def.name} (queue "${def.queue}")`, `queue name "${q.name.slice(0, 60)}…" is longer than 255 characters`);
      }
      this.byQueue.set(def.queue, def);
      if (def.idempotent && retryHorizonMs(def) >= inboxRetentionMs) {
        throw new ConsumerDefinitionError(
          `${def.name} (queue "${def.queue}")`,
          `its retries span ${retryHorizonMs(def)} ms, not less than consumers.inbox.retentionMs (${inboxRetentionMs} ms): a retry could outlive its inbox claim and run twice; raise the retention or shorten the delays`,
        );
      }
    }
  }

  get(queue: string): ConsumerDefinition | undefined {
    return this.byQueue.get(queue);
  }
}

function describeDifferences(a: ConsumerDefinition, b: ConsumerDefinition): string {
  const keys = ['prefetch', 'concurrency', 'maxAttempts', 'deadLetterQueue', 'ttl', 'ordered', 'idempotent', 'transactional', 'messagesPerTransaction', 'queueType'] as const;
  const diffs: string[] = keys.filter((k) => a[k] !== b[k]).map((k) => `${k} ${String(a[k])} vs ${String(b[k])}`);
  if (a.binding.exchange !== b.binding.exchange || a.binding.routingKey !== b.binding.routingKey) diffs.push(`binding ${a.binding.exchange}/${a.binding.routingKey} vs ${b.binding.exchange}/${b.binding.routingKey}`);
  if (a.contract !== b.contract) diffs.push(`contract ${a.contract.name} vs ${b.contract.name}`);
  if (a.delays.join() !== b.delays.join()) diffs.push(`retry delays [${a.delays.join(', ')}] vs [${b.delays.join(', ')}]`);
  return diffs.length > 0 ? ` with different options (${diffs.join('; ')})` : '';
}
