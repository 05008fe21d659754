import type { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import type { AuditTrail } from './AuditTrail';
import type { DeadLetterStore } from './DeadLetterStore';

/** How long rows are kept; null keeps them for ever. */
export interface RetentionPolicy {
  /** RESENT and DISCARDED dead letters whose status changed longer ago than this; NEW ones are never purged. */
  deadLettersMs: number | null;
  /** Audit entries older than this. */
  auditMs: number | null;
}

export interface PurgeResult {
  /** Rows deleted (or, with dryRun, that would be). */
  deadLetters: number;
  audit: number;
  /** The cut-off times used (epoch ms), null for a table that was left alone. */
  deadLettersBefore: number | null;
  auditBefore: number | null;
  dryRun: boolean;
}

/**
 * Deletes the dead letters and audit entries past their retention, in transactions of at most
 * `batchSize` rows each (a big first purge never holds one long lock). `dryRun` counts instead.
 */
export async function purgeExpired(
  deps: { transactions: TypeOrmTransactionManager; deadLetters: DeadLetterStore; audit: AuditTrail },
  policy: RetentionPolicy,
  options: { now?: number; dryRun?: boolean; batchSize?: number } = {},
): Promise<PurgeResult> {
  const now = options.now ?? Date.now();
  const batch = options.batchSize ?? 5000;
  const deadLettersBefore = policy.deadLettersMs === null ? null : now - policy.deadLettersMs;
  const auditBefore = policy.auditMs === null ? null : now - policy.auditMs;
  const result: PurgeResult = { deadLetters: 0, audit: 0, deadLettersBefore, auditBefore, dryRun: options.dryRun ?? false };
  const drain = async (purge: (m: Parameters<DeadLetterStore['purge']>[0]) => Promise<number>): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await deps.transactions.run(() => purge(deps.transactions.manager));
      total += n;
      if (n < batch) return total;
    }
  };
  if (deadLettersBefore !== null) {
    result.deadLetters = result.dryRun ? await deps.deadLetters.countPurgeable(deadLettersBefore) : await drain((m) => deps.deadLetters.purge(m, deadLettersBefore, batch));
  }
  if (auditBefore !== null) {
    result.audit = result.dryRun ? await deps.audit.countPurgeable(auditBefore) : await drain((m) => deps.audit.purge(m, auditBefore, batch));
  }
  return result;
}

/** `30d`, `12h`, `90m`, `45s`, `500ms` or plain milliseconds → ms; undefined when it is none of these. */
export function parseDuration(v: string): number | undefined {
  const m = /^(\d{1,12})(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Number(m[1]) * unit;
}
