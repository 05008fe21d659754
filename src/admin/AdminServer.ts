import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidInputError, NotFoundError, PayloadTooLargeError, StateConflictError, TmmError } from '../errors';
import type { Logger } from '../logging/Logger';
import type { TmmHealth } from '../runtime/Tmm';
import { OutboxStatus } from '../message/OutboxMessage';
import type { OutboxStore } from '../outbox/OutboxStore';
import type { AuditTrail } from '../deadletter/AuditTrail';
import { DEAD_LETTER_STATUSES, DeadLetterFilter, DeadLetterStatus } from '../deadletter/DeadLetter';
import type { DeadLetterService } from '../deadletter/DeadLetterService';
import type { DeadLetterStore } from '../deadletter/DeadLetterStore';
import type { OutboxAdminStore } from '../deadletter/OutboxAdminStore';
import { SET_NAME_PATTERN } from '../deadletter/storedSet';
import { AdminAuth, Principal } from './AdminAuth';
import { type ResolvedAdminOptions, hostHeaderName } from './AdminOptions';
import type { ThroughputSampler } from './metrics/ThroughputSampler';
import type { TmmMetrics } from './metrics/TmmMetrics';
import type { LagReport } from './metrics/LagReport';
import { redactSecrets } from './redactSecrets';

/** What the HTTP API works with; TmmAdmin (in an app) or the CLI (`tmm serve`) assemble it. */
export interface AdminContext {
  service: DeadLetterService;
  deadLetters: DeadLetterStore;
  outboxAdmin: OutboxAdminStore;
  outbox: OutboxStore;
  audit: AuditTrail;
  sampler?: ThroughputSampler;
  metrics?: TmmMetrics;
  /** The consumers this process runs and the queues its collector reads (for the overview). */
  info?: () => { consumers: { name: string; queue: string; deadLetterQueue: string }[]; collecting: string[] };
  /** The instance's health (tmm.health()): `/health` for load balancers, `/api/health` with the details. */
  health?: () => Promise<TmmHealth>;
  logger: Logger;
  /** Latency percentiles, consumer rates, queue depths and retrying messages (GET /api/lag). */
  lag?: () => Promise<LagReport>;
  /** The log-mode sender of this process, when it runs one: its EXCEPTION/DEAD transactions (see registerTxLogRoutes). */
  txlog?: TxLogAdminContext;
  /** The recorded journey (tmm_journey): the /api/journey routes and the dead letters' timelines (see journeyRoutes.ts). */
  journey?: JourneyStore;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

import { TxLogAdminContext, registerTxLogRoutes } from './txlogRoutes';
import type { JourneyStore } from '../journey/JourneyStore';
import { deadLetterJourney, registerJourneyRoutes } from './journeyRoutes';

const CSRF_HEADER = 'x-csrf-token';
const STATUS_LIST = `^(ALL|(${DEAD_LETTER_STATUSES.join('|')})(,(${DEAD_LETTER_STATUSES.join('|')}))*)$`;
const OUTBOX_STATUS_LIST = '^(DEAD|EXCEPTION|PENDING|DELIVERED)(,(DEAD|EXCEPTION|PENDING|DELIVERED))*$';
const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const text = (max = 255) => ({ type: 'string', minLength: 1, maxLength: max });
const page = { limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 }, offset: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 0 } };
const time = { type: 'string', maxLength: 40 };
/** A SET name (the `tmm-set` header of SET routing). */
const setName = { type: 'string', pattern: SET_NAME_PATTERN };
const filterProps = {
  status: { type: 'string', pattern: STATUS_LIST },
  topic: text(),
  consumer: text(),
  fingerprint: { type: 'string', pattern: '^[0-9a-f]{16}$' },
  messageId: text(),
  correlationId: { type: 'string', pattern: '^[A-Za-z0-9.:-]{1,128}$' },
  set: setName,
  from: time,
  to: time,
};
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: UUID_PATTERN } } };
const comment = { type: 'string', maxLength: 1000 };
const bulkBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ids: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: { type: 'string', pattern: UUID_PATTERN } },
    filter: { type: 'object', additionalProperties: false, minProperties: 1, properties: filterProps },
    limit: { type: 'integer', minimum: 1 },
    to: { type: 'string', enum: ['queue', 'route'] },
    comment,
  },
};

interface FilterQuery {
  status?: string;
  topic?: string;
  consumer?: string;
  fingerprint?: string;
  messageId?: string;
  correlationId?: string;
  set?: string;
  from?: string;
  to?: string;
}

/** Reads a time bound: epoch milliseconds or an ISO-8601 date. */
function parseTime(v: string | undefined, path: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const t = /^\d{1,15}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw new InvalidInputError(`${path} must be epoch milliseconds or an ISO-8601 date, got ${JSON.stringify(v.slice(0, 40))}`, [{ path, message: 'not a time' }]);
  return t;
}

function toFilter(q: FilterQuery, defaultStatus: DeadLetterStatus[] | undefined, where: string): DeadLetterFilter {
  const status = q.status === undefined ? defaultStatus : q.status === 'ALL' ? undefined : (q.status.split(',') as DeadLetterStatus[]);
  return {
    status,
    topic: q.topic,
    consumer: q.consumer,
    fingerprint: q.fingerprint,
    messageId: q.messageId,
    correlationId: q.correlationId,
    set: q.set,
    from: parseTime(q.from, `${where}from`),
    to: parseTime(q.to, `${where}to`),
  };
}

/** Where the console's static files are: next to this file in src/, or src/ seen from dist/. */
function consoleDir(): string {
  for (const dir of [join(__dirname, 'console'), join(__dirname, '..', '..', '..', 'src', 'admin', 'console')]) {
    try {
      readFileSync(join(dir, 'index.html'));
      return dir;
    } catch {
      // try the next
    }
  }
  throw new TmmError('TMM_ADMIN_ASSETS', `the admin console's files (src/admin/console) were not found from ${__dirname}`);
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/**
 * The admin HTTP API and web console on one fastify server.
 *
 * Security: every /api and /metrics call needs credentials (Bearer token or Basic; 401 otherwise, with
 * nothing read or changed); state-changing calls (POST) must also come from the same origin (Origin and
 * Sec-Fetch-Site checked when sent) and carry the principal's CSRF token in `x-csrf-token` (GET
 * /api/session hands it out), else 403; only JSON bodies are parsed, up to `bodyLimitBytes` (413);
 * every parameter is validated by schema (400 with the offending field). Errors never carry internal
 * details: a failure inside is logged (secrets masked) and answered with 500 and a generic message.
 */
export class AdminServer {
  readonly app: FastifyInstance;
  private readonly auth: AdminAuth;
  private readonly assets: Record<string, { type: string; body: Buffer }>;
  private address: string | undefined;

  constructor(
    private readonly ctx: AdminContext,
    private readonly options: ResolvedAdminOptions,
  ) {
    this.auth = new AdminAuth(options);
    const dir = consoleDir();
    const file = (name: string, type: string) => ({ type, body: readFileSync(join(dir, name)) });
    this.assets = {
      '/': file('index.html', 'text/html; charset=utf-8'),
      '/console.js': file('console.js', 'text/javascript; charset=utf-8'),
      '/console.css': file('console.css', 'text/css; charset=utf-8'),
      '/favicon.svg': file('favicon.svg', 'image/svg+xml'),
    };
    this.app = Fastify({
      logger: false,
      bodyLimit: options.bodyLimitBytes,
      trustProxy: false,
      ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false, useDefaults: true } },
    });
    // JSON only: a cross-site HTML form cannot send application/json without a CORS preflight.
    this.app.removeContentTypeParser('text/plain');
    this.app.addHook('onRequest', (req, reply, done) => this.guard(req, reply, done));
    this.app.addHook('onSend', (_req, reply, payload, done) => {
      reply.header('x-content-type-options', 'nosniff');
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
      done(null, payload);
    });
    this.app.setErrorHandler((error, req, reply) => this.fail(error as Error, req, reply));
    this.app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send({ error: { code: 'TMM_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
    });
    this.routes();
  }

  /** http://host:port once listening. */
  get url(): string {
    if (!this.address) throw new TmmError('TMM_ADMIN_NOT_STARTED', 'the admin server is not listening');
    return this.address;
  }

  async listen(): Promise<string> {
    await this.app.listen({ host: this.options.host, port: this.options.port });
    const addr = this.app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.options.port;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.address = `http://${host}:${port}`;
    return this.address;
  }

  async close(): Promise<void> {
    await this.app.close();
    this.address = undefined;
  }

  private deny(reply: FastifyReply, status: number, code: string, message: string): void {
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="tmm admin"');
    void reply.code(status).send({ error: { code, message } });
  }

  /**
   * The Host header against `allowedHosts` (every request, the console's files too); then authentication
   * for /api and /metrics; origin, permission and CSRF checks for state-changing calls.
   */
  private guard(req: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const allowed = this.options.allowedHosts;
    if (allowed !== '*') {
      const name = hostHeaderName(req.headers.host);
      if (name === undefined || !allowed.includes(name)) {
        return this.deny(
          reply,
          403,
          'TMM_HOST_NOT_ALLOWED',
          `host "${String(req.headers.host ?? '').slice(0, 100)}" is not one this admin server answers to; add its name to admin.allowedHosts`,
        );
      }
    }
    const path = req.url.split('?')[0];
    if (!(path.startsWith('/api/') || path === '/metrics')) return done();
    const principal = this.auth.authenticate(req.headers.authorization);
    if (!principal) {
      return this.deny(reply, 401, 'TMM_UNAUTHORIZED', req.headers.authorization ? 'invalid credentials' : 'credentials required: send Authorization: Bearer <token> (or Basic)');
    }
    if (principal.name === 'anonymous' && req.method !== 'GET' && req.method !== 'HEAD') {
      return this.deny(reply, 401, 'TMM_UNAUTHORIZED', 'credentials required for actions (anonymous access is read-only)');
    }
    req.principal = principal;
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return done();
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if ((origin !== undefined && origin !== `${req.protocol}://${req.headers.host}`) || (site !== undefined && site !== 'same-origin' && site !== 'none')) {
      return this.deny(reply, 403, 'TMM_CSRF', 'cross-site request refused');
    }
    if (!principal.canAct) return this.deny(reply, 403, 'TMM_FORBIDDEN', 'this admin server is read-only');
    const token = req.headers[CSRF_HEADER];
    if (!this.auth.checkCsrf(principal, typeof token === 'string' ? token : undefined)) {
      return this.deny(reply, 403, 'TMM_CSRF', `missing or wrong ${CSRF_HEADER} header: get the token from GET /api/session`);
    }
    done();
  }

  private fail(error: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
    const e = error as FastifyError & { problems?: unknown };
    if (e.validation) {
      const v = e.validation[0];
      const where = `${e.validationContext ?? 'request'}${v?.instancePath ? v.instancePath.replace(/\//g, '.') : ''}`;
      const field = v?.params && 'additionalProperty' in v.params ? `.${String(v.params.additionalProperty)}` : v?.params && 'missingProperty' in v.params ? `.${String(v.params.missingProperty)}` : '';
      void reply.code(400).send({ error: { code: 'TMM_INVALID_INPUT', message: `${where}${field} ${v?.message ?? 'is invalid'}`, problems: [{ path: `${where}${field}`, message: v?.message ?? 'invalid' }] } });
      return;
    }
    if (error instanceof NotFoundError) return void reply.code(404).send({ error: { code: error.code, message: error.message } });
    if (error instanceof StateConflictError) return void reply.code(409).send({ error: { code: error.code, message: error.message } });
    if (error instanceof PayloadTooLargeError) return void reply.code(413).send({ error: { code: error.code, message: error.message } });
    if (error instanceof InvalidInputError) return void reply.code(400).send({ error: { code: error.code, message: error.message, problems: error.problems } });
    const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
    if (status >= 400 && status < 500) {
      const message = e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `request body is larger than ${this.options.bodyLimitBytes} bytes` : redactSecrets(error.message);
      return void reply.code(status).send({ error: { code: 'TMM_BAD_REQUEST', message } });
    }
    this.ctx.logger.error('admin request failed', { method: req.method, url: req.url.split('?')[0], error: redactSecrets(error.message), code: (error as TmmError).code });
    void reply.code(500).send({ error: { code: 'TMM_INTERNAL', message: 'internal error; see the server log' } });
  }

  private routes(): void {
    const app = this.app;
    const { ctx, options } = this;
    for (const [path, asset] of Object.entries(this.assets)) {
      app.get(path, (_req, reply) => {
        reply.header('content-type', asset.type).header('cache-control', 'no-cache');
        if (path === '/') reply.header('content-security-policy', CSP);
        void reply.send(asset.body);
      });
    }

    // For a load balancer or an orchestrator's probe: no credentials needed (the Host allow-list still
    // applies), so it says only ok or not and which checks failed; 503 when not ok.
    app.get('/health', async (_req, reply) => {
      if (!this.ctx.health) return reply.code(404).send({ error: { code: 'TMM_NOT_FOUND', message: 'no health source' } });
      const h = await this.ctx.health();
      const failing = Object.entries(h.checks).filter(([, c]) => !c.ok).map(([k]) => k);
      return reply.code(h.ok ? 200 : 503).send({ ok: h.ok, started: h.started, failing, alerting: h.alerting });
    });
    app.get('/api/health', async (_req, reply) => {
      if (!this.ctx.health) return reply.code(404).send({ error: { code: 'TMM_NOT_FOUND', message: 'no health source' } });
      const h = await this.ctx.health();
      return reply.code(h.ok ? 200 : 503).send(h);
    });

    app.get('/api/session', async (req) => ({
      principal: req.principal!.name,
      canAct: req.principal!.canAct,
      readOnly: options.readOnly,
      csrfToken: req.principal!.canAct ? this.auth.csrfToken(req.principal!) : null,
      maxBulk: options.maxBulk,
      txlog: this.ctx.txlog !== undefined,
    }));

    app.get('/api/overview', async () => {
      const now = Date.now();
      const [outbox, dead, groups] = await Promise.all([
        ctx.outboxAdmin.stats(now),
        ctx.deadLetters.summarize(),
        ctx.deadLetters.groups({ status: [DeadLetterStatus.New] }, 10),
      ]);
      const minute = ctx.sampler?.recent(60_000, now);
      return {
        at: now,
        outbox: {
          byStatus: outbox.byStatus,
          pending: outbox.due,
          oldestPendingAgeMs: outbox.oldestWaitingSince === null ? null : Math.max(0, now - outbox.oldestWaitingSince),
          deliveredPerMinute: minute ? minute.published : null,
        },
        deadLetters: { byStatus: dead.byStatus, oldestNewAgeMs: dead.oldestNewAt === null ? null : now - dead.oldestNewAt, byConsumer: dead.byConsumer, topGroups: groups },
        consumedPerMinute: minute ? minute.consumed : null,
        throughput: ctx.sampler?.series() ?? [],
        process: ctx.info?.() ?? null,
      };
    });

    app.get<{ Querystring: FilterQuery & { limit: number; offset: number } }>(
      '/api/dead-letters',
      { schema: { querystring: { type: 'object', additionalProperties: false, properties: { ...filterProps, ...page } } } },
      async (req) => ctx.deadLetters.list(toFilter(req.query, [DeadLetterStatus.New], 'querystring.'), { limit: req.query.limit, offset: req.query.offset }),
    );

    app.get<{ Querystring: FilterQuery & { limit: number } }>(
      '/api/dead-letters/groups',
      { schema: { querystring: { type: 'object', additionalProperties: false, properties: { ...filterProps, limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 } } } } },
      async (req) => ({ groups: await ctx.deadLetters.groups(toFilter(req.query, [DeadLetterStatus.New], 'querystring.'), req.query.limit) }),
    );

    app.get<{ Params: { id: string } }>('/api/dead-letters/:id', { schema: { params: idParams } }, async (req) => {
      const letter = await ctx.deadLetters.get(req.params.id);
      if (!letter) throw new NotFoundError(`dead letter ${req.params.id}`);
      const [audit, resent] = await Promise.all([
        ctx.audit.list({ targetType: 'dead-letter', targetId: letter.id }, { limit: 100, offset: 0 }),
        letter.resentMessageId ? ctx.outbox.get(letter.resentMessageId).catch(() => undefined) : undefined,
      ]);
      const again = letter.resentMessageId ? await ctx.deadLetters.list({ messageId: letter.resentMessageId }, { limit: 5, offset: 0 }) : undefined;
      const { journey, timeline } = await deadLetterJourney(ctx.journey, letter, audit.items, again?.items ?? []);
      return { ...letter, journey, timeline, audit: audit.items, resentMessage: resent ?? null, failedAgain: again?.items ?? [] };
    });

    app.post<{ Params: { id: string }; Body: { payload?: unknown; to?: 'queue' | 'route'; comment?: string } | undefined }>(
      '/api/dead-letters/:id/resend',
      {
        schema: {
          params: idParams,
          body: { type: 'object', additionalProperties: false, properties: { payload: { anyOf: [{ type: 'object' }, { type: 'string' }] }, to: { type: 'string', enum: ['queue', 'route'] }, comment } },
        },
      },
      async (req) => {
        const body = req.body ?? {};
        const payload = body.payload === undefined ? undefined : typeof body.payload === 'string' ? body.payload : JSON.stringify(body.payload);
        const { messageId } = await ctx.service.resendOne(req.principal!.name, req.params.id, { payload, to: body.to, comment: body.comment });
        return { id: req.params.id, status: DeadLetterStatus.Resent, messageId };
      },
    );

    app.post<{ Params: { id: string }; Body: { comment?: string } | undefined }>(
      '/api/dead-letters/:id/discard',
      { schema: { params: idParams, body: { type: 'object', additionalProperties: false, properties: { comment } } } },
      async (req) => {
        await ctx.service.discardOne(req.principal!.name, req.params.id, req.body?.comment);
        return { id: req.params.id, status: DeadLetterStatus.Discarded };
      },
    );

    type BulkBody = { ids?: string[]; filter?: FilterQuery; limit?: number; to?: 'queue' | 'route'; comment?: string };
    const bulk = (action: 'resend' | 'discard') => async (req: FastifyRequest<{ Body: BulkBody }>) => {
      const body = req.body;
      if (!body || (!body.ids && !body.filter) || (body.ids && body.filter)) {
        throw new InvalidInputError('give either "ids" or a non-empty "filter"', [{ path: 'body', message: 'ids or filter required' }]);
      }
      const limit = body.limit ?? options.maxBulk;
      if (limit > options.maxBulk) throw new InvalidInputError(`body.limit must be at most ${options.maxBulk} (maxBulk)`, [{ path: 'body.limit', message: `at most ${options.maxBulk}` }]);
      const who = req.principal!.name;
      if (body.ids) {
        return action === 'resend' ? ctx.service.resend(who, body.ids, { to: body.to, comment: body.comment }) : ctx.service.discard(who, body.ids, body.comment);
      }
      const filter = toFilter(body.filter!, undefined, 'body.filter.');
      return action === 'resend'
        ? ctx.service.resendMatching(who, filter, limit, { to: body.to, comment: body.comment })
        : ctx.service.discardMatching(who, filter, limit, body.comment);
    };
    app.post('/api/dead-letters/resend', { schema: { body: bulkBody } }, bulk('resend'));
    app.post('/api/dead-letters/discard', { schema: { body: bulkBody } }, bulk('discard'));

    app.get<{ Querystring: { status?: string; topic?: string; set?: string; from?: string; to?: string; limit: number; offset: number } }>(
      '/api/outbox',
      { schema: { querystring: { type: 'object', additionalProperties: false, properties: { status: { type: 'string', pattern: OUTBOX_STATUS_LIST }, topic: text(), set: setName, from: time, to: time, ...page } } } },
      async (req) =>
        ctx.outboxAdmin.list(
          {
            status: req.query.status ? (req.query.status.split(',') as OutboxStatus[]) : [OutboxStatus.Dead, OutboxStatus.Exception],
            topic: req.query.topic,
            set: req.query.set,
            from: parseTime(req.query.from, 'querystring.from'),
            to: parseTime(req.query.to, 'querystring.to'),
          },
          { limit: req.query.limit, offset: req.query.offset },
        ),
    );

    app.get<{ Params: { id: string } }>('/api/outbox/:id', { schema: { params: idParams } }, async (req) => {
      const row = await ctx.outbox.get(req.params.id);
      if (!row) throw new NotFoundError(`outbox message ${req.params.id}`);
      const audit = await ctx.audit.list({ targetType: 'outbox', targetId: row.id }, { limit: 100, offset: 0 });
      return { ...row, audit: audit.items };
    });

    const outboxAction = (action: 'retry' | 'discard') => async (req: FastifyRequest<{ Params: { id: string }; Body: { comment?: string } | undefined }>) => {
      const row = await ctx.outbox.get(req.params.id);
      if (!row) throw new NotFoundError(`outbox message ${req.params.id}`);
      const fn = action === 'retry' ? ctx.service.retryOutbox : ctx.service.discardOutbox;
      const result = await fn.call(ctx.service, req.principal!.name, [req.params.id], req.body?.comment);
      if (result.done.length === 0) throw new StateConflictError(`outbox message ${req.params.id}`, result.skipped[0]?.status ?? row.status, action);
      return { id: req.params.id, status: action === 'retry' ? OutboxStatus.Pending : 'DISCARDED' };
    };
    const outboxActionSchema = { schema: { params: idParams, body: { type: 'object', additionalProperties: false, properties: { comment } } } };
    app.post('/api/outbox/:id/retry', outboxActionSchema, outboxAction('retry'));
    app.post('/api/outbox/:id/discard', outboxActionSchema, outboxAction('discard'));

    app.get<{ Querystring: { targetType?: 'dead-letter' | 'outbox' | 'txlog'; targetId?: string; principal?: string; action?: string; limit: number; offset: number } }>(
      '/api/audit',
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { targetType: { type: 'string', enum: ['dead-letter', 'outbox', 'txlog'] }, targetId: text(), principal: text(), action: text(64), ...page },
          },
        },
      },
      async (req) => ctx.audit.list(req.query, { limit: req.query.limit, offset: req.query.offset }),
    );

    const lag = ctx.lag;
    if (lag) app.get('/api/lag', async () => lag());

    if (ctx.txlog) registerTxLogRoutes(app, ctx.txlog, ctx.audit, ctx.logger, comment);
    if (ctx.journey) registerJourneyRoutes(app, ctx.journey);

    if (options.metrics.enabled && ctx.metrics) {
      const metrics = ctx.metrics;
      app.get('/metrics', async (_req, reply) => {
        reply.header('content-type', metrics.contentType);
        return metrics.render();
      });
    }
  }
}
