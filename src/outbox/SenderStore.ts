import type { EntityManager } from 'typeorm';
import { ConfigurationError } from '../errors';
import { OutboxMessage } from '../message/OutboxMessage';
import type { DispatchItem, Dispatcher } from '../relay/Dispatcher';
import { TransactionScope } from '../transaction/TransactionScope';
import { Lease, OutboxStore } from './OutboxStore';

/** Which sender store carries a transaction's messages: the outbox table, or the local transaction log. */
export type SenderKind = 'outbox' | 'log';

/**
 * The messages of one business transaction, handed over by the producer at the transaction's edges.
 *
 * Contract:
 * - beforeCommit() runs inside the transaction just before COMMIT, once, with every message the
 *   transaction sent (non-empty). When it resolves, the messages are durable enough that they will be
 *   published if and only if the transaction commits; when it rejects, the transaction rolls back with
 *   that error and nothing is published.
 * - afterCommit() runs after COMMIT (only if beforeCommit resolved); it starts publishing. Its errors
 *   never undo the commit: the store must still publish (or keep the messages for a later attempt).
 * - afterRollback() runs after a rollback, whether or not beforeCommit ran; nothing may be published.
 */
export interface SenderBatch {
  beforeCommit(manager: EntityManager, messages: OutboxMessage[]): Promise<void>;
  afterCommit(messages: OutboxMessage[]): Promise<void> | void;
  afterRollback(messages: OutboxMessage[]): Promise<void> | void;
}

/** A store the producer hands collected messages to; one batch per transaction. */
export interface SenderStore {
  readonly kind: SenderKind;
  open(): SenderBatch;
}

/** The outbox-table sender: one multi-row INSERT into tmm_outbox before COMMIT, the dispatcher's fast path after. */
export class OutboxSenderStore implements SenderStore {
  readonly kind = 'outbox' as const;

  constructor(
    private readonly store: OutboxStore,
    private readonly dispatcher: Dispatcher,
    private readonly lease: () => Lease,
  ) {}

  /** The outbox keeps nothing per transaction between its edges: every transaction shares one batch. */
  private readonly batch: SenderBatch = {
    beforeCommit: (manager, messages) => {
      const lease = this.lease();
      // The fast path must not publish a row once this lease has passed (another relay may own it then).
      for (const m of messages as DispatchItem[]) m.leaseUntil = lease.until;
      return this.store.append(manager, messages, lease);
    },
    // Off the caller's path: its await ends at COMMIT; the publishes start on the next event-loop turn.
    afterCommit: (messages) => this.dispatcher.dispatchSoon(messages),
    afterRollback: () => undefined,
  };

  open(): SenderBatch {
    return this.batch;
  }
}

const SENDER = Symbol('tmm:producer:sender');

/**
 * Records which sender the transaction `scope` uses (a `@TransactionalMessage({ sender })` entering it).
 * The first choice holds; a participant asking for another one is a ConfigurationError.
 */
export function chooseSender(scope: TransactionScope, kind: SenderKind, who: string): void {
  const existing = chosenSender(scope);
  if (existing === undefined) scope.resources.set(SENDER, kind);
  else if (existing !== kind) {
    throw new ConfigurationError(`${who}.sender`, `asks for sender "${kind}" but joins a transaction that sends through "${existing}"`);
  }
}

/** The sender chosen for this scope or an enclosing one, if any. */
export function chosenSender(scope: TransactionScope | undefined): SenderKind | undefined {
  for (let s = scope; s; s = s.parent) {
    const k = s.resources.get(SENDER) as SenderKind | undefined;
    if (k) return k;
  }
  return undefined;
}
