import { readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { Container } from 'inversify';
import { DataSource } from 'typeorm';
import type { MessageProducer, Tmm, TransactionManager, Transport } from '../../src/index';
import { MemoryTransport } from '../../src/testing';
import { TMM, createTmmModule } from '../../src/di';

/**
 * The inversify module's behaviour, run by one test file per inversify major (each file maps `inversify`
 * to that major with jest.mock, for tmm's code too): the module loads, every part resolves from the
 * container, a rebind of TMM.Transport before the Tmm is first resolved takes effect, and consumer
 * classes bound under their own class are found.
 */
export function inversifyModuleSuite(major: number): void {
  const pkg = major === 8 ? 'inversify' : `inversify${major}`;
  const root = join(dirname(require.resolve(pkg)).split(`${sep}node_modules${sep}`)[0], 'node_modules', pkg);
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version as string;

  it(`runs on inversify ${major} (${version}), in the test and in tmm alike`, () => {
    expect(Number(version.split('.')[0])).toBe(major);
    expect(Container).toBe(jest.requireActual(pkg).Container);
  });

  const newDataSource = () => new DataSource({ type: 'better-sqlite3', database: ':memory:' });

  it('binds the Tmm and its parts; container.get needs no cast', async () => {
    const dataSource = newDataSource();
    const container = new Container();
    await container.load(createTmmModule({ dataSource, name: `di-${major}-a`, logger: 'silent' }));
    const tmm: Tmm = container.get(TMM.Tmm);
    const producer: MessageProducer = container.get(TMM.MessageProducer);
    const tx: TransactionManager = container.get(TMM.TransactionManager);
    expect(producer).toBe(tmm.producer);
    expect(tx).toBe(tmm.transactions);
    expect(container.get(TMM.Transport)).toBe(tmm.transport);
    expect(container.get(TMM.ContextStore)).toBe(tmm.contextStore);
    expect(container.get(TMM.DataSource)).toBe(dataSource);
    expect(container.get(TMM.Tmm)).toBe(tmm); // singleton
  });

  it('a rebind of TMM.Transport before the Tmm is resolved is the transport the Tmm uses', async () => {
    const dataSource = newDataSource();
    const container = new Container();
    await container.load(createTmmModule({ dataSource, name: `di-${major}-b`, logger: 'silent' }));
    const mine: Transport = new MemoryTransport();
    // inversify 6 and 8: rebind is synchronous; 7: rebindSync (rebind returns a promise there).
    const c = container as unknown as { rebindSync?: (id: symbol) => { toConstantValue(v: unknown): void }; rebind(id: symbol): { toConstantValue(v: unknown): void } };
    if (major === 7) c.rebindSync!(TMM.Transport).toConstantValue(mine);
    else c.rebind(TMM.Transport).toConstantValue(mine);
    const tmm = container.get(TMM.Tmm);
    expect(tmm.transport).toBe(mine);
    await tmm.start();
    try {
      expect(tmm.isStarted).toBe(true);
    } finally {
      await tmm.stop();
      await dataSource.destroy();
    }
  });
}
