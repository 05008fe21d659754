import type { ExchangeSpec, QueueSpec, Topology } from '../Transport';
import { mergeQueueSpec } from './amqpTopology';

/**
 * What one AmqpTransport knows about the broker's topology. Contract:
 * - `record()` keeps every exchange and queue (bindings merged) declared so far; `restoreTopology()` lists
 *   them for re-declaration after a reconnect; `forget()` drops removed ones so a reconnect does not
 *   declare them again.
 * - `isKnown(exchange)` is true for the default exchange, declared exchanges, exchanges a binding proved to
 *   exist and exchanges a passive check found (`markKnown`); `markUnknown` undoes it when the broker says
 *   the exchange is gone. Publishing to an exchange that is not known is preceded by a check.
 */
export class AmqpTopologyRegistry {
  private readonly exchanges = new Map<string, ExchangeSpec>();
  private readonly queues = new Map<string, QueueSpec>();
  private readonly known = new Set<string>(['']);

  record(topology: Topology): void {
    for (const ex of topology.exchanges ?? []) {
      this.exchanges.set(ex.name, ex);
      this.known.add(ex.name);
    }
    for (const q of topology.queues ?? []) {
      this.queues.set(q.name, mergeQueueSpec(this.queues.get(q.name), q));
      // A successful bind proves the exchange exists.
      for (const b of q.bindings ?? []) this.known.add(b.exchange);
    }
  }

  forget(topology: Topology): void {
    for (const q of topology.queues ?? []) this.queues.delete(q.name);
    for (const e of topology.exchanges ?? []) {
      this.exchanges.delete(e.name);
      this.known.delete(e.name);
    }
  }

  /** Everything recorded, for re-declaration after a reconnect. */
  restoreTopology(): Required<Topology> {
    return { exchanges: [...this.exchanges.values()], queues: [...this.queues.values()] };
  }

  get size(): { exchanges: number; queues: number } {
    return { exchanges: this.exchanges.size, queues: this.queues.size };
  }

  isKnown(exchange: string): boolean {
    return this.known.has(exchange);
  }

  markKnown(exchange: string): void {
    this.known.add(exchange);
  }

  markUnknown(exchange: string): void {
    this.known.delete(exchange);
  }
}
