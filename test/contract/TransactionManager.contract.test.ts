import { readFileSync } from 'node:fs';
import { IllegalTransactionStateError, Propagation, TypeOrmTransactionManager, UnexpectedRollbackError, migrate } from '../../src/internal';
import { TestDatabase, createTestDatabase, dbLanes, typeormLane } from '../support/databases';
import { LedgerEntry } from '../support/entities';

describe.each(dbLanes())('TransactionManager contract on $name', ({ kind }) => {
  let db: TestDatabase;
  let tm: TypeOrmTransactionManager;

  beforeAll(async () => {
    db = await createTestDatabase(kind, [LedgerEntry]);
    await migrate(db.dataSource);
  });
  afterAll(async () => db?.dispose());
  beforeEach(async () => {
    tm = new TypeOrmTransactionManager(db.dataSource);
    await db.dataSource.getRepository(LedgerEntry).clear();
  });

  const insert = (id: string, amount = 1) => tm.getRepository(LedgerEntry).insert({ id, account: 'acc', amount });
  const ids = async () => (await db.dataSource.getRepository(LedgerEntry).find({ order: { id: 'ASC' } })).map((e) => e.id);
  const boom = new Error('boom');

  it('REQUIRED commits when fn resolves and returns its value', async () => {
    const out = await tm.run(async () => {
      await insert('a');
      return 'done';
    });
    expect(out).toBe('done');
    expect(await ids()).toEqual(['a']);
  });

  it('REQUIRED rolls back when fn throws and rethrows the same error', async () => {
    await expect(
      tm.run(async () => {
        await insert('a');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await ids()).toEqual([]);
  });

  it('REQUIRED joins the current transaction (same manager), and a failing participant makes the commit a rollback', async () => {
    let outerManager: unknown;
    let innerManager: unknown;
    await tm.run(async () => {
      outerManager = tm.manager;
      await tm.run(async () => {
        innerManager = tm.manager;
      });
    });
    expect(innerManager).toBe(outerManager);

    const err = await tm
      .run(async () => {
        await insert('a');
        await tm.run(async () => {
          await insert('b');
          throw boom;
        }).catch(() => 'swallowed');
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedRollbackError);
    expect((err as UnexpectedRollbackError).cause).toBe(boom);
    expect(await ids()).toEqual([]);
  });

  it('exposes the transaction-bound manager inside and the default manager outside', async () => {
    expect(tm.current()).toBeUndefined();
    expect(tm.manager).toBe(db.dataSource.manager);
    await tm.run(async () => {
      expect(tm.current()).toBeDefined();
      expect(tm.manager).not.toBe(db.dataSource.manager);
      expect(tm.manager.queryRunner?.isTransactionActive).toBe(true);
    });
  });

  it('SUPPORTS runs without a transaction when none is open, and joins one that is', async () => {
    await tm.run(async () => expect(tm.current()).toBeUndefined(), { propagation: Propagation.Supports });
    await tm.run(async () => {
      const outer = tm.current();
      await tm.run(async () => expect(tm.current()).toBe(outer), { propagation: Propagation.Supports });
    });
  });

  it('MANDATORY throws IllegalTransactionStateError without a transaction and joins one otherwise', async () => {
    await expect(tm.run(async () => 1, { propagation: Propagation.Mandatory, name: 'Svc.m' })).rejects.toThrow(IllegalTransactionStateError);
    await expect(tm.run(async () => 1, { propagation: Propagation.Mandatory })).rejects.toMatchObject({ code: 'TMM_ILLEGAL_TRANSACTION_STATE' });
    await tm.run(async () => {
      const outer = tm.current();
      await tm.run(async () => expect(tm.current()).toBe(outer), { propagation: Propagation.Mandatory });
    });
  });

  it('NEVER throws inside a transaction and runs plainly outside', async () => {
    await expect(tm.run(async () => tm.current(), { propagation: Propagation.Never })).resolves.toBeUndefined();
    await expect(tm.run(() => tm.run(async () => 1, { propagation: Propagation.Never }))).rejects.toThrow(/NEVER/);
  });

  it('NOT_SUPPORTED suspends the current transaction for its callee', async () => {
    await tm.run(async () => {
      const outer = tm.current();
      await tm.run(async () => expect(tm.current()).toBeUndefined(), { propagation: Propagation.NotSupported });
      expect(tm.current()).toBe(outer);
    });
  });

  it('NESTED rolls back only its savepoint and keeps the outer work', async () => {
    await tm.run(async () => {
      await insert('outer');
      await tm
        .run(
          async () => {
            await insert('inner');
            throw boom;
          },
          { propagation: Propagation.Nested },
        )
        .catch(() => undefined);
      await insert('after');
    });
    expect(await ids()).toEqual(['after', 'outer']);
  });

  it('NESTED commits its savepoint with the outer transaction and rolls back with it', async () => {
    await tm.run(async () => {
      await tm.run(() => insert('nested'), { propagation: Propagation.Nested });
    });
    expect(await ids()).toEqual(['nested']);
    await expect(
      tm.run(async () => {
        await tm.run(() => insert('nested2'), { propagation: Propagation.Nested });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await ids()).toEqual(['nested']);
  });

  it('NESTED starts a transaction when none is open', async () => {
    await tm.run(async () => {
      expect(tm.current()?.isSavepoint).toBe(false);
      await insert('n');
    }, { propagation: Propagation.Nested });
    expect(await ids()).toEqual(['n']);
  });

  /** One autocommit INSERT through `qr` (placeholders of this lane). */
  const autoInsert = (qr: import('typeorm').QueryRunner, id: string) =>
    qr.query(`INSERT INTO test_ledger (id, account, amount) VALUES (${kind === 'postgres' ? '$1, $2, $3' : '?, ?, ?'})`, [id, 'acc', 1], true);

  it('autocommit runs its statement outside a transaction open in another context: the statement commits by itself, the other rolls back alone', async () => {
    let inserted!: () => void;
    const insertedP = new Promise<void>((r) => (inserted = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const other = tm
      .run(async () => {
        await insert('other');
        inserted();
        await gate;
        throw boom;
      })
      .catch((e) => e);
    await insertedP;
    // On SQLite the statement waits for the other transaction (the writer lock); elsewhere it runs beside it.
    const auto = tm.autocommit(async (qr) => {
      expect(qr.isTransactionActive).toBe(false);
      return (await autoInsert(qr, 'auto')).affected;
    });
    open();
    expect(await other).toBe(boom);
    expect(await auto).toBe(1);
    expect(await ids()).toEqual(['auto']);
  });

  it('autocommit rejects with the statement\'s error and leaves the manager usable', async () => {
    await insert('dup');
    await expect(tm.autocommit((qr) => autoInsert(qr, 'dup'))).rejects.toThrow();
    await tm.autocommit((qr) => autoInsert(qr, 'next'));
    expect(await ids()).toEqual(['dup', 'next']);
  });

  if (kind === 'sqlite') {
    it('REQUIRES_NEW inside an open transaction is refused on SQLite (single writer) with a clear error', async () => {
      await expect(tm.run(() => tm.run(async () => 1, { propagation: Propagation.RequiresNew }))).rejects.toThrow(/SQLite has a single writer/);
    });

    it('serializes concurrent transactions on SQLite instead of failing with "cannot start a transaction within a transaction"', async () => {
      await Promise.all(
        Array.from({ length: 30 }, (_v, i) =>
          tm.run(async () => {
            await insert(`c${String(i).padStart(2, '0')}`);
            await new Promise((r) => setTimeout(r, 1));
            if (i % 5 === 0) throw boom;
          }).catch((e) => {
            if (e !== boom) throw e;
          }),
        ),
      );
      expect((await ids()).length).toBe(24);
    });

    it('autocommit inside a transaction runs on that transaction (the writer lock is held): its statement rolls back with it', async () => {
      await expect(
        tm.run(async () => {
          await tm.autocommit((qr) => autoInsert(qr, 'inside'));
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await ids()).toEqual([]);
    });
  } else {
    it('REQUIRES_NEW commits independently of the outer transaction', async () => {
      await expect(
        tm.run(async () => {
          await insert('outer');
          const outer = tm.current();
          await tm.run(async () => {
            expect(tm.current()).not.toBe(outer);
            await insert('independent');
          }, { propagation: Propagation.RequiresNew });
          expect(tm.current()).toBe(outer);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await ids()).toEqual(['independent']);
    });

    it('autocommit inside a transaction runs on another connection and commits by itself', async () => {
      await expect(
        tm.run(async () => {
          await insert('outer');
          await tm.autocommit((qr) => autoInsert(qr, 'beside'));
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await ids()).toEqual(['beside']);
    });

    it('runs concurrent transactions in parallel on separate connections', async () => {
      await Promise.all(Array.from({ length: 20 }, (_v, i) => tm.run(() => insert(`p${String(i).padStart(2, '0')}`))));
      expect((await ids()).length).toBe(20);
    });

    it('applies the isolation level to the physical transaction', async () => {
      const level = await tm.run(
        async () => {
          if (kind !== 'postgres') await insert('iso'); // InnoDB lists a transaction once it touched a table
          const rows =
            kind === 'postgres'
              ? await tm.manager.query('SHOW transaction_isolation')
              : await tm.manager.query('SELECT trx_isolation_level AS l FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()');
          return String(Object.values(rows[0])[0]).toUpperCase().replace('-', ' ');
        },
        { isolation: 'SERIALIZABLE' },
      );
      expect(level).toBe('SERIALIZABLE');
    });
  }

  it('runs beforeCommit hooks inside the transaction, afterCommit after it, afterRollback on rollback', async () => {
    const events: string[] = [];
    await tm.run(async () => {
      const scope = tm.current()!;
      scope.beforeCommit(async () => {
        events.push(`before:${tm.current() === scope}`);
        await insert('from-hook');
      });
      scope.afterCommit(() => {
        events.push(`after:${tm.current() === undefined}`);
      });
      scope.afterRollback(() => {
        events.push('rollback');
      });
    });
    expect(events).toEqual(['before:true', 'after:true']);
    expect(await ids()).toEqual(['from-hook']);

    events.length = 0;
    await expect(
      tm.run(async () => {
        const scope = tm.current()!;
        scope.afterCommit(() => {
          events.push('after');
        });
        scope.afterRollback(() => {
          events.push('rollback');
        });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(events).toEqual(['rollback']);
  });

  it('a failing beforeCommit hook rolls back and its error propagates', async () => {
    const hookError = new Error('hook failed');
    await expect(
      tm.run(async () => {
        await insert('x');
        tm.current()!.beforeCommit(() => {
          throw hookError;
        });
      }),
    ).rejects.toBe(hookError);
    expect(await ids()).toEqual([]);
  });

  it('runs synchronous and asynchronous hooks in registration order, hooks added by hooks included, each in its context', async () => {
    const events: string[] = [];
    const errors: string[] = [];
    const logged = new TypeOrmTransactionManager(db.dataSource, {
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (msg: string, f?: Record<string, unknown>) => void errors.push(`${msg}: ${(f?.error as Error).message}`) },
    });
    await logged.run(async () => {
      const scope = logged.current()!;
      scope.beforeCommit(() => void events.push(`b1:${logged.current() === scope}`));
      scope.beforeCommit(async () => {
        await new Promise((r) => setImmediate(r));
        events.push(`b2:${logged.current() === scope}`);
        // A hook that registers another one: it runs in this commit, after the hooks already there.
        scope.beforeCommit(() => void events.push(`b4:${logged.current() === scope}`));
      });
      scope.beforeCommit(() => void events.push(`b3:${logged.current() === scope}`));
      scope.afterCommit(() => {
        events.push(`a1:${logged.current() === undefined}`);
        throw new Error('sync after');
      });
      scope.afterCommit(async () => {
        await Promise.resolve();
        events.push(`a2:${logged.current() === undefined}`);
        scope.afterCommit(() => void events.push(`a4:${logged.current() === undefined}`));
        throw new Error('async after');
      });
      scope.afterCommit(() => void events.push(`a3:${logged.current() === undefined}`));
    });
    // The commit's caller returns after every afterCommit hook ran (the asynchronous ones awaited).
    expect(events).toEqual(['b1:true', 'b2:true', 'b3:true', 'b4:true', 'a1:true', 'a2:true', 'a3:true', 'a4:true']);
    expect(errors).toEqual(['afterCommit hook failed: sync after', 'afterCommit hook failed: async after']);
  });

  it('an asynchronous beforeCommit hook that rejects stops the hooks after it and rolls back', async () => {
    const events: string[] = [];
    const hookError = new Error('async hook failed');
    await expect(
      tm.run(async () => {
        await insert('y');
        const scope = tm.current()!;
        scope.beforeCommit(() => void events.push('first'));
        scope.beforeCommit(async () => {
          await Promise.resolve();
          throw hookError;
        });
        scope.beforeCommit(() => void events.push('not run'));
        scope.afterCommit(() => void events.push('not committed'));
        scope.afterRollback(() => void events.push('rolled back'));
      }),
    ).rejects.toBe(hookError);
    expect(events).toEqual(['first', 'rolled back']);
    expect(await ids()).toEqual([]);
  });

  it('drops a rolled-back savepoint’s hooks and keeps a released one’s', async () => {
    const events: string[] = [];
    await tm.run(async () => {
      await tm.run(async () => {
        tm.current()!.afterCommit(() => void events.push('kept'));
      }, { propagation: Propagation.Nested });
      await tm
        .run(async () => {
          tm.current()!.afterCommit(() => void events.push('dropped'));
          tm.current()!.afterRollback(() => void events.push('savepoint-rolled-back'));
          throw boom;
        }, { propagation: Propagation.Nested })
        .catch(() => undefined);
    });
    expect(events).toEqual(['savepoint-rolled-back', 'kept']);
  });
});

describe('TypeORM lane', () => {
  it('runs the suites on the TypeORM major this lane is for', () => {
    const entry = require.resolve('typeorm');
    const pkgDir = entry.slice(0, entry.lastIndexOf('node_modules/') + 'node_modules/'.length) + entry.split('node_modules/').pop()!.split('/')[0];
    const version: string = JSON.parse(readFileSync(`${pkgDir}/package.json`, 'utf8')).version;
    expect(version).toMatch(typeormLane === 'typeorm03' ? /^0\.3\./ : /^1\./);
  });
});
