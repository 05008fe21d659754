/** Service identifiers for what createTmmModule (and createTmmAdminModule) bind. Symbols, so they never clash with the app's. */
export const TMM = {
  Tmm: Symbol.for('tmm:Tmm'),
  DataSource: Symbol.for('tmm:DataSource'),
  ContextStore: Symbol.for('tmm:ContextStore'),
  TransactionManager: Symbol.for('tmm:TransactionManager'),
  MessageProducer: Symbol.for('tmm:MessageProducer'),
  Transport: Symbol.for('tmm:Transport'),
  OutboxStore: Symbol.for('tmm:OutboxStore'),
  Dispatcher: Symbol.for('tmm:Dispatcher'),
  ConsumerRunner: Symbol.for('tmm:ConsumerRunner'),
  InboxStore: Symbol.for('tmm:InboxStore'),
  /** Bound by createTmmAdminModule (from `tmm/admin`): the TmmAdmin and its parts. */
  Admin: Symbol.for('tmm:Admin'),
  DeadLetterService: Symbol.for('tmm:DeadLetterService'),
  DeadLetterStore: Symbol.for('tmm:DeadLetterStore'),
  AuditTrail: Symbol.for('tmm:AuditTrail'),
} as const;
