import { Container } from 'inversify';
import { ConfigurationError, DeadLetterService, MemoryTransport, TMM, Tmm, createTmmModule } from '../../src/internal';
import { TmmAdmin } from 'tmm/admin';
import { createTmmAdminModule } from 'tmm/inversify';
import { TestDatabase, createTestDatabase } from '../support/databases';

const TOKEN = 'di-test-token-0123456789';

describe('TMM-ADMIN through inversify', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('sqlite');
  });
  afterAll(async () => db.dispose());

  it('refuses bad admin options when the module is created, naming the path', () => {
    expect(() => createTmmAdminModule({})).toThrow(ConfigurationError);
    expect(() => createTmmAdminModule({})).toThrow(/"admin.auth": no credentials configured/);
    expect(() => createTmmAdminModule({ auth: { tokens: { ops: TOKEN } }, porrt: 1 } as never)).toThrow(/"admin.porrt": unknown key/);
  });

  it('builds one TmmAdmin on the container’s Tmm and serves the API once started', async () => {
    const container = new Container();
    await container.load(
      createTmmModule({ dataSource: db.dataSource, transport: new MemoryTransport(), logger: 'silent' }),
      createTmmAdminModule({ port: 0, auth: { tokens: { ops: TOKEN } } }),
    );
    const tmm = container.get<Tmm>(TMM.Tmm);
    const admin = container.get<TmmAdmin>(TMM.Admin);
    expect(admin).toBeInstanceOf(TmmAdmin);
    expect(admin.tmm).toBe(tmm);
    expect(container.get(TMM.Admin)).toBe(admin);
    expect(container.get<DeadLetterService>(TMM.DeadLetterService)).toBe(admin.service);
    expect(container.get(TMM.DeadLetterStore)).toBe(admin.deadLetters);
    expect(container.get(TMM.AuditTrail)).toBe(admin.audit);

    await tmm.start();
    const url = await admin.start();
    try {
      const res = await fetch(`${url}/api/overview`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(200);
      const anonymous = await fetch(`${url}/api/overview`);
      expect(anonymous.status).toBe(401);
    } finally {
      await admin.stop();
      await tmm.stop();
    }
  });
});
