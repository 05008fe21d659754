import { request as httpRequest } from 'node:http';
import { ConfigurationError, MemoryTransport, Tmm } from '../../src/internal';
import { TmmAdmin, redactSecrets } from 'tmm/admin';
import { AdminHarness, ALICE, ApiClient, basic, startAdminHarness } from '../support/adminHarness';
import { CapturingLogger } from '../support/broker';
import { createTestDatabase } from '../support/databases';
import { newDeadLetter } from '../support/deadLetters';

/**
 * The admin's security rules on a real server and database. Every refused request must leave the
 * database exactly as it was: "nothing changed" is checked against the dead letter, the outbox and the
 * audit trail after each one.
 */
describe('admin security', () => {
  let h: AdminHarness;
  let id: string;
  const logger = new CapturingLogger();

  beforeAll(async () => {
    h = await startAdminHarness('sqlite', { admin: { port: 0, auth: { tokens: { ops: 'x'.repeat(8) + 'secret-token-1' }, users: { [ALICE.user]: ALICE.password } }, bodyLimitBytes: 64 * 1024, logger } });
    ({ id } = await h.tmm.transactions.run(() => h.admin.deadLetters.add(h.tmm.transactions.manager, newDeadLetter())));
  });
  afterAll(async () => h?.dispose());

  const ops = () => new ApiClient(h.url, `Bearer ${'x'.repeat(8)}secret-token-1`);
  const unchanged = async () => {
    const letter = await h.admin.deadLetters.get(id);
    expect(letter?.status).toBe('NEW');
    expect(letter?.statusBy).toBeNull();
    expect((await h.admin.audit.list({}, { limit: 1, offset: 0 })).total).toBe(0);
    expect(Object.values(await h.tmm.outbox.countByStatus()).reduce((a, b) => a + b, 0)).toBe(0);
  };

  it('no credentials → 401 on reads, actions and metrics, with a WWW-Authenticate challenge', async () => {
    const anon = new ApiClient(h.url, undefined);
    for (const path of ['/api/overview', '/api/dead-letters', `/api/dead-letters/${id}`, '/metrics', '/api/session', '/api/health']) {
      const res = await anon.get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
      expect(res.body.error.code).toBe('TMM_UNAUTHORIZED');
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
    }
    expect((await anon.post(`/api/dead-letters/${id}/resend`, {}, { csrf: false })).status).toBe(401);
    await unchanged();
  });

  it('/health answers a probe without credentials with ok, the failing checks and the names of firing alerts only; the details need credentials', async () => {
    const anon = new ApiClient(h.url, undefined);
    const res = await anon.get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, started: true, failing: [], alerting: [] });
    const detail = await ops().get('/api/health');
    expect(detail.status).toBe(200);
    expect(detail.body.checks.database.ok).toBe(true);
    expect(detail.body.checks.outbox).toHaveProperty('oldestPendingAgeMs');
  });

  it('wrong token, wrong password, unknown user or scheme → 401', async () => {
    for (const authorization of [`Bearer ${'y'.repeat(22)}`, 'Bearer ', basic(ALICE.user, 'wrong password!'), basic('mallory', ALICE.password), 'Digest abc', basic('alice', '')]) {
      const res = await new ApiClient(h.url, authorization).get('/api/dead-letters');
      expect({ authorization, status: res.status }).toEqual({ authorization, status: 401 });
      expect(res.body.error.message).toBe('invalid credentials');
    }
  });

  it('refuses state-changing calls without the CSRF token, or from another origin, even with valid credentials', async () => {
    const api = ops();
    const noToken = await api.post(`/api/dead-letters/${id}/discard`, {}, { csrf: false });
    expect(noToken.status).toBe(403);
    expect(noToken.body.error.code).toBe('TMM_CSRF');
    const wrongToken = await api.post(`/api/dead-letters/${id}/discard`, {}, { csrf: false, headers: { 'x-csrf-token': 'forged' } });
    expect(wrongToken.status).toBe(403);
    // Another principal's token is no good either.
    const aliceToken = await new ApiClient(h.url, basic(ALICE.user, ALICE.password)).csrfToken();
    expect((await api.post(`/api/dead-letters/${id}/discard`, {}, { csrf: false, headers: { 'x-csrf-token': aliceToken } })).status).toBe(403);
    const crossOrigin = await api.post(`/api/dead-letters/${id}/discard`, {}, { headers: { origin: 'http://evil.example' } });
    expect(crossOrigin.status).toBe(403);
    expect(crossOrigin.body.error.message).toBe('cross-site request refused');
    expect((await api.post(`/api/dead-letters/${id}/discard`, {}, { headers: { 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
    await unchanged();
  });

  /** A request with a Host header of our choosing (fetch cannot set Host). */
  function withHost(host: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
    const { hostname, port } = new URL(h.url);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ hostname, port, path, method: init.method ?? 'GET', headers: { ...init.headers, host } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(init.body);
    });
  }

  it('answers only to its own host names: a DNS-rebinding page gets 403 and reads nothing, not even the console', async () => {
    const port = new URL(h.url).port;
    const auth = `Bearer ${'x'.repeat(8)}secret-token-1`;
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, 'a b']) {
      for (const path of ['/', '/console.js', '/api/overview', `/api/dead-letters/${id}`, '/metrics']) {
        const res = await withHost(host, path, { headers: { authorization: auth } });
        expect({ host, path, status: res.status }).toEqual({ host, path, status: 403 });
        expect(res.body).not.toContain(id);
        expect(JSON.parse(res.body).error.code).toBe('TMM_HOST_NOT_ALLOWED');
      }
    }
    // An action with valid credentials, CSRF token and a matching Origin, from a rebound name: refused, nothing changed.
    const csrf = await ops().csrfToken();
    const action = await withHost(`evil.example:${port}`, `/api/dead-letters/${id}/discard`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json', 'x-csrf-token': csrf, origin: `http://evil.example:${port}` },
      body: '{}',
    });
    expect(action.status).toBe(403);
    expect(JSON.parse(action.body).error.message).toContain('admin.allowedHosts');
    await unchanged();
    // The server's own names still work.
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
      expect({ host, status: (await withHost(host, '/api/overview', { headers: { authorization: auth } })).status }).toEqual({ host, status: 200 });
    }
  });

  it('a cross-site HTML form post (basic auth cached by the browser) is refused', async () => {
    // What a form on another site can send: urlencoded or text/plain body, no custom headers.
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
      const res = await fetch(`${h.url}/api/dead-letters/${id}/discard`, {
        method: 'POST',
        headers: { authorization: basic(ALICE.user, ALICE.password), 'content-type': type, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
        body: 'comment=gotcha',
      });
      expect({ type, status: res.status }).toEqual({ type, status: 403 });
    }
    await unchanged();
  });

  it('oversized or malformed input → 4xx with a clear message, nothing changed', async () => {
    const api = ops();
    const big = await api.post(`/api/dead-letters/${id}/resend`, { payload: 'x'.repeat(100 * 1024) });
    expect(big.status).toBe(413);
    expect(big.body.error.message).toContain('larger than 65536 bytes');

    const broken = await api.request('POST', `/api/dead-letters/${id}/resend`, { raw: '{"payload": ', headers: { 'content-type': 'application/json' } });
    expect(broken.status).toBe(400);
    expect(broken.body.error.message).toMatch(/JSON/i);

    const cases: [string, () => Promise<{ status: number; body: any }>, RegExp][] = [
      ['unknown field', () => api.post(`/api/dead-letters/${id}/resend`, { payload: {}, force: true }), /must NOT have additional properties|force/],
      ['bad target', () => api.post(`/api/dead-letters/${id}/resend`, { to: 'elsewhere' }), /body.to/],
      ['bad id', () => api.post('/api/dead-letters/not-an-id/resend', {}), /params.id/],
      ['payload not an object', () => api.post(`/api/dead-letters/${id}/resend`, { payload: '[1,2]' }), /JSON object/],
      ['ids with junk', () => api.post('/api/dead-letters/discard', { ids: ["1' OR 1=1"] }), /body.ids/],
      ['limit too big', () => api.get('/api/dead-letters?limit=100000'), /limit/],
      ['bad status', () => api.get('/api/dead-letters?status=BOGUS'), /status/],
      ['bad time', () => api.get('/api/dead-letters?from=yesterday'), /from must be epoch milliseconds or an ISO-8601 date/],
      ['unknown query', () => api.get('/api/dead-letters?sort=drop'), /sort|additional/],
      ['bulk over maxBulk', () => api.post('/api/dead-letters/resend', { filter: { topic: 'order.paid' }, limit: 10_000_000 }), /at most 10000/],
    ];
    for (const [name, call, message] of cases) {
      const res = await call();
      expect({ name, status: res.status }).toEqual({ name, status: 400 });
      expect({ name, message: res.body.error.message }).toEqual({ name, message: expect.stringMatching(message) });
    }
    await unchanged();
  });

  it('errors never carry internal details or secrets; the log masks them too', async () => {
    const spy = jest.spyOn(h.admin.deadLetters, 'summarize').mockRejectedValueOnce(new Error('connect failed: postgres://app:S3cr3t-pw@db.internal:5432/prod password=S3cr3t-pw'));
    const res = await ops().get('/api/overview');
    spy.mockRestore();
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.body)).not.toContain('S3cr3t');
    expect(res.body.error.message).toBe('internal error; see the server log');
    const line = logger.lines.find((l) => l.message === 'admin request failed');
    expect(JSON.stringify(line)).not.toContain('S3cr3t');
    expect(String(line?.fields?.error)).toContain('postgres://app:***@db.internal:5432/prod');
  });

  it('the console is served with a strict content security policy, and the session never echoes a credential', async () => {
    const html = await fetch(`${h.url}/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(html.headers.get('x-frame-options')).toBe('DENY');
    const session = await ops().get('/api/session');
    expect(JSON.stringify(session.body)).not.toContain('secret-token-1');
    const metrics = await ops().get('/metrics');
    expect(String(metrics.body)).not.toContain('secret-token-1');
  });
});

describe('admin start-up rules', () => {
  it('refuses to start without credentials, allows anonymous read-only only on loopback, and read-only mode refuses actions', async () => {
    const db = await createTestDatabase('sqlite');
    const tmm = new Tmm({ dataSource: db.dataSource, transport: new MemoryTransport(), logger: 'silent' });
    await tmm.start();
    try {
      expect(() => new TmmAdmin(tmm, {})).toThrow(ConfigurationError);
      expect(() => new TmmAdmin(tmm, {})).toThrow(/admin.auth.*no default password/);
      expect(() => new TmmAdmin(tmm, { auth: { tokens: { ops: 'short' } } })).toThrow(/admin.auth.tokens.ops.*at least 16/);
      expect(() => new TmmAdmin(tmm, { host: '0.0.0.0', auth: { anonymousLocalRead: true } })).toThrow(/anonymousLocalRead.*loopback/);
      expect(() => new TmmAdmin(tmm, { auth: { tokens: { ops: 'x'.repeat(20) } }, colour: 'red' } as never)).toThrow(/admin.colour.*unknown key/);

      const local = new TmmAdmin(tmm, { port: 0, auth: { anonymousLocalRead: true }, collector: { enabled: false } });
      const url = await local.start();
      try {
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        const anon = new ApiClient(url, undefined);
        expect((await anon.get('/api/dead-letters')).status).toBe(200);
        expect((await anon.get('/api/session')).body).toMatchObject({ principal: 'anonymous', canAct: false, csrfToken: null });
        expect((await anon.post('/api/dead-letters/discard', { ids: [] }, { csrf: false })).status).toBe(401);
      } finally {
        await local.stop();
      }

      const readOnly = new TmmAdmin(tmm, { port: 0, readOnly: true, auth: { tokens: { ops: 'r'.repeat(20) } }, collector: { enabled: false } });
      const roUrl = await readOnly.start();
      try {
        const res = await new ApiClient(roUrl, `Bearer ${'r'.repeat(20)}`).post('/api/dead-letters/discard', { ids: [] }, { csrf: false });
        expect(res.status).toBe(403);
        expect(res.body.error.message).toBe('this admin server is read-only');
      } finally {
        await readOnly.stop();
      }
    } finally {
      await tmm.stop();
      await db.dispose();
    }
  });
});

describe('redactSecrets', () => {
  it('masks URL passwords and password-like pairs, and leaves the rest', () => {
    expect(redactSecrets('amqp://guest:guest@127.0.0.1:5672/vhost failed')).toBe('amqp://guest:***@127.0.0.1:5672/vhost failed');
    expect(redactSecrets('mysql://root:p@ss@db/x')).toBe('mysql://root:***@db/x'); // an unencoded @ in the password leaks nothing
    expect(redactSecrets('login failed: password=hunter2; user=bob')).toBe('login failed: password=***; user=bob');
    expect(redactSecrets('order 42 failed')).toBe('order 42 failed');
  });
});
