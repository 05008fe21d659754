import type { EntityManager } from 'typeorm';

/**
 * Where idempotent consumers record what they have processed, so that a message delivered again (a
 * redelivery after a crash, a retry copy, a second publish of the same outbox row) has its effect once.
 *
 * Contract:
 * - claim() INSERTs the key (consumer, messageId) on the transaction of `manager` and resolves true, or
 *   resolves false when the key is already there (a duplicate). It never reads first: the unique key
 *   decides, so two concurrent claims of one key cannot both win. A claim racing an uncommitted one waits
 *   for that transaction: false once it committed, true when it rolled back.
 * - A claim is part of the caller's transaction: rolled back with it (the message can be claimed again),
 *   committed with it (together with the handler's writes). Called outside a transaction it throws
 *   IllegalTransactionStateError.
 * - claimAll() claims several message ids at once, with the same rules, and resolves with the ids it
 *   claimed (an id given twice is claimed once). One statement where the dialect can say which rows it
 *   inserted (RETURNING: PostgreSQL, SQLite); one claim() each elsewhere (MySQL/MariaDB).
 * - A duplicate leaves the transaction usable (no failed statement that would abort it, as a unique
 *   violation does on PostgreSQL).
 * - purge() deletes claims processed before `before` (epoch ms) in bounded batches and returns how many;
 *   it runs outside any caller transaction and may run concurrently with claims.
 * - Consumer names and message ids are at most 255 characters.
 */
export interface InboxStore {
  claim(manager: EntityManager, consumer: string, messageId: string, now?: number): Promise<boolean>;
  claimAll(manager: EntityManager, consumer: string, messageIds: readonly string[], now?: number): Promise<Set<string>>;
  purge(before: number): Promise<number>;
  /** Whether a claim exists; for tools and tests, never used on the claim path. */
  has(consumer: string, messageId: string): Promise<boolean>;
}
