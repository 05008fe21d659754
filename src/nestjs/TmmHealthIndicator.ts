import { Inject, Injectable } from '@nestjs/common';
import { Tmm } from '../runtime/Tmm';

/** `{ [key]: { status, ...details } }`: the result shape `@nestjs/terminus` health indicators return. */
export type TmmHealthResult = Record<string, { status: 'up' | 'down'; [detail: string]: unknown }>;

/** Thrown when down; `isHealthCheckError` and `causes` are what terminus (10 and 11) looks for. */
export class TmmHealthCheckError extends Error {
  readonly isHealthCheckError = true;
  constructor(
    message: string,
    readonly causes: TmmHealthResult,
  ) {
    super(message);
    this.name = 'TmmHealthCheckError';
  }
}

/**
 * A terminus-style health indicator without a dependency on `@nestjs/terminus`:
 * `health.check([() => tmmHealth.isHealthy('tmm')])`. Up when tmm is started, the database answers
 * `SELECT 1` within `timeoutMs`, the relay and the consumers run (where enabled) and the transport is
 * connected (transports that say so). Down: throws TmmHealthCheckError with the details.
 */
@Injectable()
export class TmmHealthIndicator {
  constructor(@Inject(Tmm) private readonly tmm: Tmm) {}

  async isHealthy(key = 'tmm', options: { timeoutMs?: number } = {}): Promise<TmmHealthResult> {
    const details: Record<string, unknown> = { started: this.tmm.isStarted, consumers: this.tmm.consumers.isRunning };
    const problems: string[] = [];
    if (!this.tmm.isStarted) problems.push('tmm is not started');
    const connected = (this.tmm.transport as { isConnected?: unknown }).isConnected;
    if (typeof connected === 'boolean') {
      details.transportConnected = connected;
      if (!connected) problems.push('the transport is not connected');
    }
    try {
      await withTimeout(this.tmm.dataSource.query('SELECT 1'), options.timeoutMs ?? 3000);
      details.database = 'up';
    } catch (e) {
      details.database = 'down';
      problems.push(`the database does not answer: ${(e as Error).message}`);
    }
    if (problems.length === 0) return { [key]: { status: 'up', ...details } };
    const result: TmmHealthResult = { [key]: { status: 'down', message: problems.join('; '), ...details } };
    throw new TmmHealthCheckError(`tmm is down: ${problems.join('; ')}`, result);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
