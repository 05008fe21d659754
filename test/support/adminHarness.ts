import { randomBytes } from 'node:crypto';
import { MemoryTransport, Tmm, TmmOptions, Transport } from '../../src/internal';
import { AdminOptions, TmmAdmin } from 'tmm/admin';
import { DbKind, TestDatabase, createTestDatabase } from './databases';

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A small HTTP client for the admin API: credentials, and the CSRF token fetched once per principal. */
export class ApiClient {
  private csrf: string | undefined;
  constructor(
    readonly url: string,
    readonly authorization: string | undefined,
  ) {}

  async request<T = any>(method: string, path: string, options: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; csrf?: boolean } = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...(this.authorization ? { authorization: this.authorization } : {}) };
    if (method !== 'GET' && options.csrf !== false) headers['x-csrf-token'] = await this.csrfToken();
    let body: string | Buffer | undefined = options.raw;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const res = await fetch(this.url + path, { method, headers: { ...headers, ...options.headers }, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (metrics, console files)
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  get<T = any>(path: string, headers?: Record<string, string>) {
    return this.request<T>('GET', path, { headers });
  }

  post<T = any>(path: string, body: unknown = {}, options: { headers?: Record<string, string>; csrf?: boolean } = {}) {
    return this.request<T>('POST', path, { body, ...options });
  }

  async csrfToken(): Promise<string> {
    if (!this.csrf) this.csrf = (await this.get<{ csrfToken: string }>('/api/session')).body.csrfToken;
    return this.csrf;
  }
}

export interface AdminHarness {
  db: TestDatabase;
  tmm: Tmm;
  admin: TmmAdmin;
  transport: Transport;
  url: string;
  token: string;
  /** Authenticated as token principal `ops`. */
  api: ApiClient;
  dispose(): Promise<void>;
}

export const ALICE = { user: 'alice', password: 'correct horse battery staple' };
export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A started Tmm (memory transport unless given) with a started TmmAdmin on a free port, on a fresh database. */
export async function startAdminHarness(
  kind: DbKind,
  options: { consumers?: object[]; transport?: Transport; tmm?: Partial<TmmOptions>; admin?: AdminOptions } = {},
): Promise<AdminHarness> {
  const db = await createTestDatabase(kind);
  const transport = options.transport ?? new MemoryTransport();
  const tmm = new Tmm({ dataSource: db.dataSource, transport, logger: 'silent', ...options.tmm });
  if (options.consumers) tmm.consumers.register(...options.consumers);
  await tmm.start();
  const token = randomBytes(24).toString('hex');
  const admin = new TmmAdmin(tmm, { port: 0, auth: { tokens: { ops: token }, users: { [ALICE.user]: ALICE.password } }, ...options.admin });
  const url = await admin.start();
  return {
    db,
    tmm,
    admin,
    transport,
    url,
    token,
    api: new ApiClient(url, `Bearer ${token}`),
    async dispose() {
      await admin.stop();
      await tmm.stop();
      await db.dispose();
    },
  };
}
