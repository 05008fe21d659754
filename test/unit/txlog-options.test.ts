import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, Tmm, silentLogger } from '../../src/internal';
import { TransactionalMessage } from 'tmm/decorators';
import { DataSource } from 'typeorm';
import { TxLogSender } from '../../src/txlog';

const transport = { features: { durable: true, confirms: true }, declare: async () => undefined, publish: async () => undefined, subscribe: async () => ({ cancel: async () => undefined }), close: async () => undefined };
const deps = { transport, logger: silentLogger, serviceName: 's' };

describe('txlog options', () => {
  it.each([
    [{ directories: [] }, 'txlog.directories'],
    [{ directories: ['/x', '/x'] }, 'txlog.directories'],
    [{ directories: ['a', 'b', 'c'] }, 'txlog.directories'],
    [{ directories: ['a'], segmentBytes: 0 }, 'txlog.segmentBytes'],
    [{ directories: ['a'], maxChecks: 1.5 }, 'txlog.maxChecks'],
    [{ directories: ['a'], inDoubtAfterMs: -1 }, 'txlog.inDoubtAfterMs'],
    [{ directories: ['a'], checkUrl: 'not a url' }, 'txlog.checkUrl'],
    [{ directories: ['a'], barrier: true }, 'txlog.barrier'],
    [{ directories: ['a'], repairIntervalMs: 0 }, 'txlog.repairIntervalMs'],
    [{ directories: ['a'], barrierRetentionMs: -5 }, 'txlog.barrierRetentionMs'],
  ])('refuses %j naming %s', (options, path) => {
    expect(() => new TxLogSender(options as never, deps)).toThrow(expect.objectContaining({ code: 'TMM_CONFIG_INVALID', message: expect.stringContaining(path) }));
  });

  it('start() without the barrier table (migrate: false) fails naming the table and how to create it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tmm-txlog-nobarrier-'));
    const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    const tmm = new Tmm({ dataSource, transport: new MemoryTransport(), logger: 'silent', migrate: false, txlog: { directories: [dir] } });
    try {
      await expect(tmm.start()).rejects.toMatchObject({ code: 'TMM_CONFIG_INVALID', message: expect.stringMatching(/tmm_txlog_barrier is missing: run tmm's migration/) });
    } finally {
      await tmm.stop().catch(() => undefined);
      if (dataSource.isInitialized) await dataSource.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses sender 'log' without txlog", () => {
    const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    expect(() => new Tmm({ dataSource, sender: 'log' })).toThrow(expect.objectContaining({ code: 'TMM_CONFIG_INVALID', message: expect.stringContaining('sender') }));
  });

  it('refuses a bad sender on @TransactionalMessage', () => {
    expect(() => TransactionalMessage({ sender: 'disk' as never })).toThrow(expect.objectContaining({ message: expect.stringContaining('TransactionalMessage.sender') }));
  });
});
