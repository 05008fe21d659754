import { createHash } from 'node:crypto';

/**
 * The error text with what differs between occurrences of the same problem replaced by placeholders:
 * ISO times, UUIDs, long hex strings, quoted values and numbers. `order 42 not found` and
 * `order 1337 not found` normalize alike.
 */
export function normalizeErrorMessage(message: string): string {
  return message
    .replace(/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?/g, '<time>')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<uuid>')
    .replace(/\b(0x)?[0-9a-f]{12,}\b/gi, '<hex>')
    .replace(/"[^"]*"|'[^']*'|`[^`]*`/g, '<str>')
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
