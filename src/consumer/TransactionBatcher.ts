import { HandlerAbandonedError } from '../errors';
import type { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import type { ConsumerDefinition } from './ConsumerDefinition';
import type { Stage } from './ConsumerPipeline';
import type { DeliveryState } from './DeliveryState';
import type { InboxStore } from './InboxStore';
import type { StopGate } from './StopGate';

interface Entry {
  readonly state: DeliveryState;
  /** The rest of the pipeline after the transaction and the claim (interceptors → handler). */
  readonly rest: () => Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * How long a partial group waits for more deliveries while other groups of the consumer are running. The
 * broker hands new deliveries over as acks free prefetch slots, a few at a time: without this pause, busy
 * consumers would commit many groups of one or two.
 */
const GROUP_LINGER_MS = 2;

/**
 * Groups deliveries of one consumer into shared transactions (`messagesPerTransaction` > 1). A delivery
 * reaching the transaction stage waits for the end of the current I/O turn (setImmediate), so the ones the
 * broker handed over together are grouped; when the consumer is idle it waits no longer, and while other
 * groups are running a partial group waits up to GROUP_LINGER_MS to fill. Each group runs in one transaction:
 * one multi-row inbox claim (idempotent consumers), then each claimed delivery's interceptors and handler
 * one after another, then COMMIT; every delivery of the group then goes on to its ack. If anything in the
 * group fails, the transaction is rolled back (claims included) and each delivery runs again in a
 * transaction of its own — the failing one is then retried or dead-lettered alone, the others commit.
 * A group is thus a speculation: a handler may run more than once, its transaction's effects once.
 */
export class TransactionBatcher {
  private pending: Entry[] = [];
  private scheduled = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private running = 0;

  constructor(
    private readonly def: ConsumerDefinition,
    private readonly transactions: TypeOrmTransactionManager,
    private readonly inbox: InboxStore,
    /** The one-delivery path (transaction stage, inbox stage): the fallback, and groups of one. */
    private readonly single: (state: DeliveryState, rest: () => Promise<void>) => Promise<void>,
    private readonly gate: () => StopGate,
  ) {}

  /** The pipeline stage that takes the place of the transaction and inbox stages. */
  stage(): Stage {
    return (state, next) =>
      new Promise<void>((resolve, reject) => {
        this.pending.push({ state, rest: next, resolve, reject });
        if (this.pending.length >= this.def.messagesPerTransaction && this.lingerTimer) this.flush();
        else if (!this.scheduled && !this.lingerTimer) {
          this.scheduled = true;
          setImmediate(() => {
            this.scheduled = false;
            if (this.running === 0 || this.pending.length >= this.def.messagesPerTransaction) this.flush();
            else this.lingerTimer = setTimeout(() => this.flush(), GROUP_LINGER_MS);
          });
        }
      });
  }

  private flush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const entries = this.pending;
    this.pending = [];
    if (entries.length === 0) return;
    // Even groups (50 in hand, 16 per transaction: 4 groups of 12–13, not 16/16/16/2): they run in parallel.
    const groups = Math.ceil(entries.length / this.def.messagesPerTransaction);
    for (let g = 0, start = 0; g < groups; g++) {
      const size = Math.ceil((entries.length - start) / (groups - g));
      void this.runGroup(entries.slice(start, start + size));
      start += size;
    }
  }

  private async runGroup(entries: Entry[]): Promise<void> {
    this.running++;
    try {
      await this.runGroupNow(entries);
    } finally {
      this.running--;
    }
  }

  private async runGroupNow(entries: Entry[]): Promise<void> {
    // A delivery without an id cannot be claimed in a group: it takes the single path (and its error).
    const grouped = this.def.idempotent ? entries.filter((e) => e.state.messageId) : entries;
    for (const e of entries) if (!grouped.includes(e)) this.runSingle(e);
    if (grouped.length === 0) return;
    if (grouped.length === 1) return this.runSingle(grouped[0]);
    try {
      await this.transactions.run(
        async () => {
          const scope = this.transactions.current()!;
          let claimed: Set<string> | undefined;
          if (this.def.idempotent) {
            claimed = await this.inbox.claimAll(scope.manager, this.def.queue, grouped.map((e) => e.state.messageId));
          }
          for (const e of grouped) {
            e.state.scope = scope;
            // The first delivery of an id takes the claim; a second copy in the same group is a duplicate.
            if (claimed && !claimed.delete(e.state.messageId)) {
              e.state.outcome = 'duplicate';
              continue;
            }
            await e.rest();
          }
          if (this.gate().abandoned) throw new HandlerAbandonedError(this.def.name, grouped[0].state.messageId);
        },
        { name: this.def.name },
      );
    } catch (error) {
      if (error instanceof HandlerAbandonedError || this.gate().abandoned) {
        for (const e of grouped) e.reject(error);
        return;
      }
      // Isolate the failure: each delivery again, in a transaction of its own.
      for (const e of grouped) {
        e.state.scope = undefined;
        e.state.outcome = undefined;
        this.runSingle(e);
      }
      return;
    }
    for (const e of grouped) e.resolve();
  }

  private runSingle(e: Entry): Promise<void> {
    return this.single(e.state, e.rest).then(e.resolve, e.reject);
  }
}
