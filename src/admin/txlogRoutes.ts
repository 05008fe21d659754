import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { EntityManager } from 'typeorm';
import { AuditTrail } from '../deadletter/AuditTrail';
import { NotFoundError } from '../errors/AdminErrors';
import { Logger } from '../logging/Logger';
import type { TxLogSender } from '../txlog/TxLogSender';

/** What the admin needs of a log-mode sender: the sender itself, and the manager the audit entries are written with. */
export interface TxLogAdminContext {
  sender: TxLogSender;
  auditManager: EntityManager;
}

/**
 * TMM-ADMIN's view of the log-mode sender (异常消息):
 * - GET  /api/txlog                          health (degraded directories, in doubt, pending) and the EXCEPTION/DEAD list
 * - GET  /api/txlog/exceptions/:uid          one, with its check-back history and messages, and its audit entries
 * - POST /api/txlog/exceptions/:uid/force-send   publish its messages now (resolves when confirmed)
 * - POST /api/txlog/exceptions/:uid/discard      drop it: never published
 * Both actions are audited (`txlog.force-send`, `txlog.discard`, target type `txlog`). The action happens on
 * the sender's disks, the entry in the database: the entry is written right after the action succeeded (an
 * audit write that fails is logged at error; the action is not undone).
 */
export function registerTxLogRoutes(app: FastifyInstance, ctx: TxLogAdminContext, audit: AuditTrail, logger: Logger, comment: object): void {
  const uidParams = { type: 'object', required: ['uid'], additionalProperties: false, properties: { uid: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' } } };
  app.get('/api/txlog', async () => ({ health: ctx.sender.health(), problems: ctx.sender.listProblems().map(({ messages, ...p }) => ({ ...p, messageCount: messages.length })) }));
  app.get<{ Params: { uid: string } }>('/api/txlog/exceptions/:uid', { schema: { params: uidParams } }, async (req) => {
    const p = ctx.sender.getProblem(req.params.uid);
    if (!p) throw new NotFoundError(`txlog transaction ${req.params.uid}`);
    const entries = await audit.list({ targetType: 'txlog', targetId: p.uid }, { limit: 100, offset: 0 });
    return { ...p, audit: entries.items };
  });
  const action = (name: 'force-send' | 'discard') => async (req: FastifyRequest<{ Params: { uid: string }; Body: { comment?: string } | undefined }>) => {
    const before = ctx.sender.getProblem(req.params.uid);
    if (!before) throw new NotFoundError(`txlog transaction ${req.params.uid} in EXCEPTION or DEAD`);
    const snapshot = { state: before.state, reason: before.reason, topics: before.topics, messageIds: before.messages.map((m) => m.id), checks: before.checks.length };
    if (name === 'force-send') await ctx.sender.forceSend(req.params.uid);
    else await ctx.sender.discard(req.params.uid);
    const after = { state: name === 'force-send' ? 'SENT' : 'DISCARDED' };
    try {
      await audit.record(ctx.auditManager, [
        { at: Date.now(), principal: req.principal!.name, action: `txlog.${name}`, targetType: 'txlog', targetId: req.params.uid, before: snapshot, after, comment: req.body?.comment ?? null },
      ]);
    } catch (e) {
      logger.error('tmm admin: txlog action done but its audit entry was not written', { uid: req.params.uid, action: name, error: String(e) });
    }
    return { uid: req.params.uid, ...after };
  };
  const schema = { schema: { params: uidParams, body: { type: 'object', additionalProperties: false, properties: { comment } } } };
  app.post('/api/txlog/exceptions/:uid/force-send', schema, action('force-send'));
  app.post('/api/txlog/exceptions/:uid/discard', schema, action('discard'));
}
