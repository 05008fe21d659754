import type { DataSource } from 'typeorm';
import type { ConsumerRunner } from '../consumer/ConsumerRunner';
import type { InboxStore } from '../consumer/InboxStore';
import type { ContextStore } from '../context/ContextStore';
import type { AuditTrail } from '../deadletter/AuditTrail';
import type { DeadLetterService } from '../deadletter/DeadLetterService';
import type { DeadLetterStore } from '../deadletter/DeadLetterStore';
import type { Logger } from '../logging/Logger';
import type { MessageProducer } from '../outbox/MessageProducer';
import type { OutboxStore } from '../outbox/OutboxStore';
import type { Tmm } from '../runtime/Tmm';
import type { TransactionManager } from '../transaction/TransactionManager';
import type { Transport } from '../transport/Transport';

/**
 * A service identifier that carries the type bound under it, so `container.get(TMM.MessageProducer)` is a
 * MessageProducer without a cast. At run time it is a plain `Symbol.for('tmm:…')` (the same in every
 * copy of tmm); the type claims an abstract constructor only so that inversify's `ServiceIdentifier<T>`
 * (6, 7 and 8 alike) infers `T` from it. Never call `new` on it.
 */
export type TmmToken<T> = symbol & (abstract new (...args: any[]) => T); // eslint-disable-line @typescript-eslint/no-explicit-any

const token = <T>(name: string): TmmToken<T> => Symbol.for(`tmm:${name}`) as TmmToken<T>;

/**
 * What `TMM.Admin` resolves to: the TmmAdmin of `tmm/admin`, seen through the members an app uses (so that
 * `tmm/inversify`'s typings do not pull in the admin's HTTP server types for apps without the admin).
 */
export interface TmmAdminHandle {
  start(): Promise<unknown>;
  stop(): Promise<void>;
  readonly service: DeadLetterService;
  readonly deadLetters: DeadLetterStore;
  readonly audit: AuditTrail;
}

/** Service identifiers for what createTmmModule (and createTmmAdminModule) bind. */
export const TMM = {
  Tmm: token<Tmm>('Tmm'),
  DataSource: token<DataSource>('DataSource'),
  /** Rebind before the Tmm is first resolved to choose another context store. */
  ContextStore: token<ContextStore>('ContextStore'),
  TransactionManager: token<TransactionManager>('TransactionManager'),
  MessageProducer: token<MessageProducer>('MessageProducer'),
  /** Rebind before the Tmm is first resolved to use another transport (`container.rebind(TMM.Transport)`). */
  Transport: token<Transport>('Transport'),
  Logger: token<Logger>('Logger'),
  OutboxStore: token<OutboxStore>('OutboxStore'),
  ConsumerRunner: token<ConsumerRunner>('ConsumerRunner'),
  InboxStore: token<InboxStore>('InboxStore'),
  /** Bound by createTmmAdminModule: the TmmAdmin and its parts. */
  Admin: token<TmmAdminHandle>('Admin'),
  DeadLetterService: token<DeadLetterService>('DeadLetterService'),
  DeadLetterStore: token<DeadLetterStore>('DeadLetterStore'),
  AuditTrail: token<AuditTrail>('AuditTrail'),
} as const;
