import { sqlDialectFor } from '../sql/SqlDialect';
import { TmmError } from '../errors';
import { Propagation } from '../transaction/Propagation';
import { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';

export class RelayLockedError extends TmmError {
  constructor(
    readonly lockName: string,
    readonly holder: string,
    until: number,
  ) {
    super(
      'TMM_RELAY_LOCKED',
      `relay lock "${lockName}" is held by ${holder} until ${new Date(until).toISOString()}: only one relay may run per SQLite database file`,
    );
  }
}

/**
 * A named lock row in `tmm_lock` with an expiry, renewed by its holder. Used to keep a single relay per
 * SQLite database file (SQLite has no SKIP LOCKED; one relay is also all its single writer needs).
 * A holder that dies loses the lock when `ttlMs` passes without renewal.
 */
export class RelayLock {
  constructor(
    private readonly transactions: TypeOrmTransactionManager,
    private readonly owner: string,
    private readonly name = 'relay',
    private readonly ttlMs = 15_000,
  ) {}

  private p(n: number): string {
    return sqlDialectFor(this.transactions.dialect).placeholder(n);
  }

  async acquire(now = Date.now()): Promise<void> {
    await this.transactions.run(
      async () => {
        const m = this.transactions.manager;
        const rows: { owner: string; until: number | string }[] = await m.query(`SELECT owner, until FROM tmm_lock WHERE name = ${this.p(1)}`, [this.name]);
        if (rows.length > 0) {
          const holder = rows[0].owner;
          const until = Number(rows[0].until);
          if (holder !== this.owner && until > now) throw new RelayLockedError(this.name, holder, until);
          await m.query(`UPDATE tmm_lock SET owner = ${this.p(1)}, until = ${this.p(2)} WHERE name = ${this.p(3)}`, [this.owner, now + this.ttlMs, this.name]);
        } else {
          await m.query(`INSERT INTO tmm_lock (name, owner, until) VALUES (${this.p(1)}, ${this.p(2)}, ${this.p(3)})`, [this.name, this.owner, now + this.ttlMs]);
        }
      },
      { propagation: Propagation.RequiresNew, name: 'tmm.relay.lock' },
    );
  }

  /** Extends the lock; re-acquires it when it expired and nobody took it; throws RelayLockedError if someone did. */
  async renew(now = Date.now()): Promise<void> {
    await this.acquire(now);
  }

  async release(): Promise<void> {
    await this.transactions.run(
      () => this.transactions.manager.query(`DELETE FROM tmm_lock WHERE name = ${this.p(1)} AND owner = ${this.p(2)}`, [this.name, this.owner]),
      { propagation: Propagation.RequiresNew, name: 'tmm.relay.unlock' },
    );
  }
}
