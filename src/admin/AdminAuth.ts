import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ResolvedAdminOptions } from './AdminOptions';

/** Who made a request: `token:<name>`, `user:<name>`, or `anonymous` (local read-only mode). */
export interface Principal {
  name: string;
  /** May change state (false for anonymous and in read-only mode). */
  canAct: boolean;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Checks credentials (Bearer token or Basic auth, compared in constant time) and issues the CSRF token
 * a principal must send back on state-changing calls: an HMAC of the principal with a key drawn at
 * start-up, so it needs no storage and is useless to anyone else.
 */
export class AdminAuth {
  private readonly tokens: { name: string; hash: Buffer }[];
  private readonly users: Map<string, Buffer>;
  private readonly csrfKey = randomBytes(32);

  constructor(private readonly options: Pick<ResolvedAdminOptions, 'auth' | 'readOnly'>) {
    this.tokens = Object.entries(options.auth.tokens).map(([name, token]) => ({ name, hash: digest(token) }));
    this.users = new Map(Object.entries(options.auth.users).map(([name, password]) => [name, digest(password)]));
  }

  get anonymousAllowed(): boolean {
    return this.options.auth.anonymousLocalRead;
  }

  /** The principal for an Authorization header, `undefined` for wrong or missing credentials. */
  authenticate(header: string | undefined): Principal | undefined {
    if (!header) return this.anonymousAllowed ? { name: 'anonymous', canAct: false } : undefined;
    const [scheme, value = ''] = header.trim().split(/\s+/, 2);
    if (/^bearer$/i.test(scheme)) {
      const hash = digest(value);
      let found: string | undefined;
      // Compare against every token (no early exit), so timing says nothing about which was close.
      for (const t of this.tokens) if (timingSafeEqual(t.hash, hash)) found = t.name;
      return found ? { name: `token:${found}`, canAct: !this.options.readOnly } : undefined;
    }
    if (/^basic$/i.test(scheme)) {
      let decoded = '';
      try {
        decoded = Buffer.from(value, 'base64').toString('utf8');
      } catch {
        return undefined;
      }
      const colon = decoded.indexOf(':');
      if (colon < 0) return undefined;
      const user = decoded.slice(0, colon);
      const hash = digest(decoded.slice(colon + 1));
      const expected = this.users.get(user) ?? digest(randomBytes(16).toString('hex'));
      const ok = timingSafeEqual(expected, hash) && this.users.has(user);
      return ok ? { name: `user:${user}`, canAct: !this.options.readOnly } : undefined;
    }
    return undefined;
  }

  csrfToken(principal: Principal): string {
    return createHmac('sha256', this.csrfKey).update(principal.name).digest('base64url');
  }

  checkCsrf(principal: Principal, token: string | undefined): boolean {
    if (!token) return false;
    const expected = Buffer.from(this.csrfToken(principal));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
