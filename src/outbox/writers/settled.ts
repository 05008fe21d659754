/**
 * The one promise the write path returns for a write that already happened synchronously (better-sqlite3's
 * writer; an INSERT handed to a pipelined COMMIT). A caller that gets exactly this promise may go on without
 * awaiting it: the producer's beforeCommit hook then returns nothing, and the transaction manager awaits no
 * promise before COMMIT (ADR 0077). Never rejects.
 */
export const SETTLED: Promise<void> = Promise.resolve();
