import { createHash } from 'node:crypto';

/**
 * The error text with what differs between occurrences of the same problem replaced by placeholders:
 * ISO times, UUIDs, long hex strings, quoted values, ids that mix letters and digits (`ord-7d199d60`,
 * nanoid, ULID: a run of 8 or more of [A-Za-z0-9_-] with at least one letter and one digit) and numbers.
 * `order 42 not found` and `order 1337 not found` normalize alike, so do `ord-7d199d60 failed` and
 * `ord-0be2aa41 failed`. An id without a digit (a nanoid made of letters only, rare) is not recognised:
 * pass your own fingerprint function for such ids (docs/interop.md).
 */
export function normalizeErrorMessage(message: string): string {
  return message
    .replace(/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?/g, '<time>')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<uuid>')
    .replace(/\b(0x)?[0-9a-f]{12,}\b/gi, '<hex>')
    .replace(/"[^"]*"|'[^']*'|`[^`]*`/g, '<str>')
    .replace(/(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{8,}(?![A-Za-z0-9_-])/g, '<id>')
    .replace(/\d+(\.\d+)?/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 500);
}

/**
 * Groups dead letters that are the same problem: a hash of the consumer, the error code and the
 * normalized error message. The consumer is part of it because one error text in two handlers is
 * usually two bugs, fixed (and resent) separately. 16 hex characters.
 */
export function errorFingerprint(consumer: string | null, errorCode: string | null, errorMessage: string): string {
  return createHash('sha256')
    .update(`${consumer ?? ''}\u0000${errorCode ?? ''}\u0000${normalizeErrorMessage(errorMessage)}`)
    .digest('hex')
    .slice(0, 16);
}

/** What an app's fingerprint function is given: one dead letter's consumer, error and headers. */
export interface FingerprintInput {
  consumer: string | null;
  errorCode: string | null;
  errorMessage: string;
  topic: string;
  headers: Readonly<Record<string, unknown>>;
}

/**
 * An app-provided grouping of dead letters (`collector.fingerprint` in the admin options): returns the
 * group key (1–64 characters). A throw or another result falls back to errorFingerprint (logged).
 */
export type FingerprintFunction = (input: FingerprintInput) => string;
