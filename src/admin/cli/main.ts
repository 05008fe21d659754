#!/usr/bin/env node
import 'reflect-metadata';
import './requireCliPeers';
import { sqlDialectFor } from '../../sql/SqlDialect';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import type { DataSource } from 'typeorm';
import { DEAD_LETTER_STATUSES, DeadLetterFilter, DeadLetterStatus } from '../../deadletter/DeadLetter';
import { DeadLetterService } from '../../deadletter/DeadLetterService';
import { contractsForDeadLetter } from '../../deadletter/deadLetterContracts';
import { TypeOrmAuditTrail } from '../../deadletter/TypeOrmAuditTrail';
import { TypeOrmDeadLetterStore } from '../../deadletter/TypeOrmDeadLetterStore';
import { BufferedJourneyRecorder } from '../../journey/BufferedJourneyRecorder';
import { TypeOrmJourneyStore } from '../../journey/TypeOrmJourneyStore';
import { TypeOrmOutboxAdminStore } from '../../deadletter/TypeOrmOutboxAdminStore';
import { SET_NAME_PATTERN } from '../../deadletter/storedSet';
import { InvalidInputError, NotFoundError, PayloadTooLargeError, QueueMigrationError, StateConflictError, TmmError, TopologyError } from '../../errors';
import type { Topology } from '../../transport/Transport';
import { ConsoleLogger } from '../../logging/Logger';
import { OutboxStatus } from '../../message/OutboxMessage';
import { TypeOrmOutboxStore } from '../../outbox/TypeOrmOutboxStore';
import { migrate, migrationStatements } from '../../runtime/migrate';
import { dialectOf } from '../../transaction/dialect';
import { TypeOrmTransactionManager } from '../../transaction/TypeOrmTransactionManager';
import { AdminServer } from '../AdminServer';
import { defaultAdminOptions, resolveAdminOptions } from '../AdminOptions';
import { parseDuration, purgeExpired } from '../../deadletter/Retention';
import { redactSecrets } from '../redactSecrets';
import { CliExit, ExitCode } from './ExitCode';
import { openDatabase } from './openDatabase';

interface Globals {
  db?: string;
  schema?: string;
  json?: boolean;
  as?: string;
  require?: string[];
}

/** The services over one database, for one CLI command. */
class Session {
  readonly transactions: TypeOrmTransactionManager;
  readonly outbox: TypeOrmOutboxStore;
  readonly deadLetters: TypeOrmDeadLetterStore;
  readonly audit: TypeOrmAuditTrail;
  readonly outboxAdmin: TypeOrmOutboxAdminStore;
  readonly service: DeadLetterService;
  /** tmm_journey: read by `serve`; the resends and discards of this command are recorded there (written before exit). */
  readonly journeyStore: TypeOrmJourneyStore;
  readonly journey: BufferedJourneyRecorder;

  constructor(
    readonly dataSource: DataSource,
    readonly principal: string,
  ) {
    this.transactions = new TypeOrmTransactionManager(dataSource);
    const dialect = this.transactions.dialect;
    this.outbox = new TypeOrmOutboxStore(this.transactions, sqlDialectFor(this.transactions.dialect));
    this.deadLetters = new TypeOrmDeadLetterStore(dataSource, dialect);
    this.audit = new TypeOrmAuditTrail(dataSource, dialect);
    this.outboxAdmin = new TypeOrmOutboxAdminStore(dataSource, dialect);
    this.journeyStore = new TypeOrmJourneyStore(this.transactions, sqlDialectFor(dialect));
    this.journey = new BufferedJourneyRecorder(this.journeyStore, { purgeIntervalMs: 0 });
    this.journey.start();
    // No dispatcher here: resends and retries are rows in tmm_outbox, published by the application's relay.
    this.service = new DeadLetterService({
      transactions: this.transactions,
      outbox: this.outbox,
      deadLetters: this.deadLetters,
      outboxAdmin: this.outboxAdmin,
      audit: this.audit,
      owner: `tmm-cli-${process.pid}`,
      // No consumers here: only contract classes loaded into this process (e.g. `node -r ./contracts.js`) validate edits.
      contractFor: (letter) => contractsForDeadLetter(letter, []),
      journey: this.journey,
    });
  }
}

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const iso = (t: number | null | undefined) => (t ? new Date(t).toISOString() : '-');

function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) return out('(none)');
  const cells = rows.map((r) => columns.map((c) => String(r[c] ?? '-').replace(/\s+/g, ' ').slice(0, 80)));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  out(columns.map((c, i) => c.toUpperCase().padEnd(widths[i])).join('  '));
  for (const row of cells) out(row.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd());
}

function intOption(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new CliExit(ExitCode.Usage, `--${name} must be an integer from ${min} to ${max}, got "${v}"`);
    return n;
  };
}

function timeOption(name: string) {
  return (v: string): number => {
    const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (!Number.isFinite(t)) throw new CliExit(ExitCode.Usage, `--${name} must be an ISO-8601 time or epoch milliseconds, got "${v}"`);
    return t;
  };
}

function statusOption(v: string): DeadLetterStatus[] | undefined {
  if (v.toUpperCase() === 'ALL') return undefined;
  const list = v.toUpperCase().split(',');
  for (const s of list) if (!DEAD_LETTER_STATUSES.includes(s as DeadLetterStatus)) throw new CliExit(ExitCode.Usage, `--status must be ${DEAD_LETTER_STATUSES.join(', ')} or ALL, got "${v}"`);
  return list as DeadLetterStatus[];
}

/** --set: a SET's name as SET routing stamps it (the admin API's `set=` filter takes the same). */
function setOption(v: string): string {
  if (!new RegExp(SET_NAME_PATTERN).test(v)) throw new CliExit(ExitCode.Usage, `--set must be a SET name (1-128 characters, no quote, backslash or control character), got ${JSON.stringify(v)}`);
  return v;
}

function filterOptions(cmd: Command): Command {
  return cmd
    .option('--status <list>', 'NEW, RESENT, DISCARDED (comma-separated) or ALL', 'NEW')
    .option('--topic <topic>', 'only this topic')
    .option('--consumer <name>', 'only this consumer (Class.method)')
    .option('--set <name>', 'only messages of this SET (SET routing: the set a message was sent to)', setOption)
    .option('--fingerprint <hex>', 'only this error group')
    .option('--since <time>', 'last failure at or after (ISO-8601 or epoch ms)', timeOption('since'))
    .option('--until <time>', 'last failure at or before (ISO-8601 or epoch ms)', timeOption('until'));
}

function toFilter(o: { status?: string; topic?: string; consumer?: string; set?: string; fingerprint?: string; since?: number; until?: number }): DeadLetterFilter {
  return { status: statusOption(o.status ?? 'NEW'), topic: o.topic, consumer: o.consumer, set: o.set, fingerprint: o.fingerprint, from: o.since, to: o.until };
}

function hasCriteria(o: { topic?: string; consumer?: string; set?: string; fingerprint?: string; since?: number; until?: number }): boolean {
  return [o.topic, o.consumer, o.set, o.fingerprint, o.since, o.until].some((v) => v !== undefined);
}

export function buildProgram(run: (fn: (s: Session, g: Globals) => Promise<number | void>, g: () => Globals) => Promise<void>): Command {
  const program = new Command('tmm')
    .description('Operate tmm: schema migrations, the outbox backlog, dead letters (the database directly); queue migrations (the broker).')
    .option('--db <url>', 'database URL (default: $TMM_DB_URL): sqlite:PATH, postgres://…, mysql://…')
    .option('--schema <name>', 'PostgreSQL schema (search_path)')
    .option('--json', 'machine-readable output (one JSON document on stdout)')
    .option('--as <principal>', 'who you are in the audit trail (default: cli:<os user>)')
    .option(
      '--require <module>',
      'load this module first, e.g. your compiled @MessageContract classes, so edited payloads are validated against them (repeatable; a path or a package name)',
      (v: string, previous: string[] | undefined) => [...(previous ?? []), v],
    )
    .showHelpAfterError()
    .exitOverride();
  const g = (): Globals => program.opts<Globals>();
  const json = (v: unknown) => out(JSON.stringify(v, null, 2));

  program
    .command('migrate')
    .description("create or upgrade tmm's tables (idempotent; safe from several processes at once)")
    .option('--print-sql [dialect]', "print the SQL for a fresh database instead of running it (dialect: sqlite, postgres or mysql; default: the database's)")
    .action((cmd: { printSql?: string | boolean }) => {
      const printSql = cmd.printSql;
      if (typeof printSql === 'string') {
        if (!['sqlite', 'postgres', 'mysql'].includes(printSql)) {
          process.stderr.write(`tmm: --print-sql takes sqlite, postgres or mysql, got "${printSql}"\n`);
          process.exitCode = ExitCode.Usage;
          return;
        }
        out(migrationStatements(printSql as 'sqlite' | 'postgres' | 'mysql').map((sql) => `${sql};`).join('\n\n'));
        return;
      }
      return run(async (s, o) => {
        if (printSql) {
          out(migrationStatements(dialectOf(s.dataSource)).map((sql) => `${sql};`).join('\n\n'));
          return;
        }
        const r = await migrate(s.dataSource);
        if (o.json) json(r);
        else out(r.applied.length === 0 ? `schema is up to date (${r.dialect})` : `applied (${r.dialect}): ${r.applied.map((a) => `${a.component} v${a.version}`).join(', ')}`);
      }, g);
    });

  program
    .command('status')
    .description('outbox backlog and dead letters at a glance')
    .option('--check', `exit ${ExitCode.Attention} when there are NEW dead letters or DEAD/EXCEPTION outbox rows`)
    .action((opts: { check?: boolean }) =>
      run(async (s, o) => {
        const now = Date.now();
        const [outbox, dead] = await Promise.all([s.outboxAdmin.stats(now), s.deadLetters.summarize()]);
        const status = {
          outbox: { ...outbox.byStatus, due: outbox.due, oldestDueAgeMs: outbox.oldestWaitingSince === null ? null : now - outbox.oldestWaitingSince },
          deadLetters: { ...dead.byStatus, oldestNewAgeMs: dead.oldestNewAt === null ? null : now - dead.oldestNewAt, byConsumer: dead.byConsumer },
        };
        if (o.json) json(status);
        else {
          out(`outbox        pending ${outbox.byStatus.PENDING} (due ${outbox.due}, oldest due ${status.outbox.oldestDueAgeMs === null ? '-' : `${Math.round(status.outbox.oldestDueAgeMs / 1000)}s`})  dead ${outbox.byStatus.DEAD}  exception ${outbox.byStatus.EXCEPTION}  delivered(kept) ${outbox.byStatus.DELIVERED}`);
          out(`dead letters  new ${dead.byStatus.NEW}  resent ${dead.byStatus.RESENT}  discarded ${dead.byStatus.DISCARDED}`);
          for (const c of dead.byConsumer) out(`  ${c.consumer ?? '(unknown consumer)'}: ${c.count} new`);
        }
        const attention = dead.byStatus.NEW + outbox.byStatus.DEAD + outbox.byStatus.EXCEPTION > 0;
        return opts.check && attention ? ExitCode.Attention : ExitCode.Ok;
      }, g),
    );

  const dead = program.command('dead').description('dead letters collected from the dead-letter queues');
  filterOptions(dead.command('list').description('list dead letters, newest first'))
    .option('--limit <n>', 'rows to show (1-1000)', intOption('limit', 1, 1000), 50)
    .option('--offset <n>', 'rows to skip', intOption('offset', 0, 100_000_000), 0)
    .action((opts) =>
      run(async (s, o) => {
        const page = await s.deadLetters.list(toFilter(opts), { limit: opts.limit, offset: opts.offset });
        if (o.json) return json(page);
        printTable(
          page.items.map((d) => ({ id: d.id, lastFailure: iso(d.lastFailureAt), status: d.status, topic: d.topic, consumer: d.consumer, attempts: d.attempts, error: d.errorMessage })),
          ['id', 'lastFailure', 'status', 'topic', 'consumer', 'attempts', 'error'],
        );
        out(`${page.items.length === 0 ? 0 : page.offset + 1}-${page.offset + page.items.length} of ${page.total}`);
      }, g),
    );

  filterOptions(dead.command('groups').description('dead letters grouped by error fingerprint'))
    .option('--limit <n>', 'groups to show', intOption('limit', 1, 1000), 50)
    .action((opts) =>
      run(async (s, o) => {
        const groups = await s.deadLetters.groups(toFilter(opts), opts.limit);
        if (o.json) return json({ groups });
        printTable(groups.map((gr) => ({ ...gr, last: iso(gr.lastFailureAt) })), ['fingerprint', 'count', 'consumer', 'topic', 'last', 'sampleError']);
      }, g),
    );

  dead
    .command('show')
    .description('one dead letter with payload, headers, error and audit trail')
    .argument('<id>', 'dead letter id')
    .action((id: string) =>
      run(async (s, o) => {
        const d = await s.deadLetters.get(id);
        if (!d) throw new NotFoundError(`dead letter ${id}`);
        const audit = await s.audit.list({ targetType: 'dead-letter', targetId: d.id }, { limit: 100, offset: 0 });
        if (o.json) return json({ ...d, audit: audit.items });
        for (const [k, v] of Object.entries({ ...d, payload: undefined, headers: undefined, errorStack: undefined })) if (v !== undefined) out(`${k.padEnd(18)} ${k.endsWith('At') && typeof v === 'number' ? iso(v) : String(v ?? '-')}`);
        out(`\npayload\n${d.payload}\n\nerror\n${d.errorStack ?? d.errorMessage}`);
        if (audit.items.length > 0) out(`\naudit\n${audit.items.map((a) => `${iso(a.at)} ${a.principal} ${a.action}`).join('\n')}`);
      }, g),
    );

  filterOptions(
    dead
      .command('resend')
      .description('resend dead letters through the outbox: by id, or every one matching a filter (with --all-matching)')
      .argument('[ids...]', 'dead letter ids'),
  )
    .option('--all-matching', 'act on every dead letter matching the filter options (at least one of --topic, --consumer, --set, --fingerprint, --since, --until)')
    .option('--payload-file <file>', 'resend one dead letter with this payload (JSON) instead of its own; the original is kept')
    .addOption(new Option('--to <target>', 'queue: the consumer’s own queue (default); route: the original exchange and routing key').choices(['queue', 'route']))
    .option('--limit <n>', 'most dead letters one --all-matching run resends', intOption('limit', 1, 1_000_000), 10_000)
    .option('--comment <text>', 'recorded in the audit trail')
    .action((ids: string[], opts) =>
      run(async (s, o) => {
        const payload = opts.payloadFile ? readPayload(opts.payloadFile) : undefined;
        if (payload !== undefined && ids.length !== 1) throw new CliExit(ExitCode.Usage, '--payload-file needs exactly one id');
        if (payload !== undefined) {
          const { messageId } = await s.service.resendOne(s.principal, ids[0], { payload, to: opts.to, comment: opts.comment });
          return report(o, { done: [ids[0]], skipped: [], messages: { [ids[0]]: messageId } }, 'resent');
        }
        return report(o, await bulkOrIds(s, ids, opts, 'resend'), 'resent');
      }, g),
    );

  filterOptions(dead.command('discard').description('discard dead letters: by id, or every one matching a filter (with --all-matching)').argument('[ids...]', 'dead letter ids'))
    .option('--all-matching', 'act on every dead letter matching the filter options')
    .option('--limit <n>', 'most dead letters one --all-matching run discards', intOption('limit', 1, 1_000_000), 10_000)
    .option('--comment <text>', 'recorded in the audit trail')
    .action((ids: string[], opts) => run(async (s, o) => report(o, await bulkOrIds(s, ids, opts, 'discard'), 'discarded'), g));

  const outbox = program.command('outbox').description('outbox rows the relay gave up on (DEAD) or is unsure about (EXCEPTION)');
  outbox
    .command('list')
    .description('list outbox rows, newest first')
    .option('--status <list>', 'DEAD, EXCEPTION, PENDING, DELIVERED (comma-separated)', 'DEAD,EXCEPTION')
    .option('--topic <topic>', 'only this topic')
    .option('--set <name>', 'only rows of this SET (SET routing: the set the row was stamped with)', setOption)
    .option('--limit <n>', 'rows to show (1-1000)', intOption('limit', 1, 1000), 50)
    .option('--offset <n>', 'rows to skip', intOption('offset', 0, 100_000_000), 0)
    .action((opts) =>
      run(async (s, o) => {
        const status = String(opts.status).toUpperCase().split(',') as OutboxStatus[];
        for (const st of status) if (!Object.values(OutboxStatus).includes(st)) throw new CliExit(ExitCode.Usage, `--status must list DEAD, EXCEPTION, PENDING or DELIVERED, got "${opts.status}"`);
        const page = await s.outboxAdmin.list({ status, topic: opts.topic, set: opts.set }, { limit: opts.limit, offset: opts.offset });
        if (o.json) return json(page);
        printTable(page.items.map((r) => ({ ...r, created: iso(r.createdAt) })), ['id', 'created', 'status', 'topic', 'set', 'attempts', 'lastError']);
        out(`${page.items.length === 0 ? 0 : page.offset + 1}-${page.offset + page.items.length} of ${page.total}`);
      }, g),
    );
  for (const [name, verb] of [['retry', 'retried'], ['discard', 'discarded']] as const) {
    outbox
      .command(name)
      .description(name === 'retry' ? 'make DEAD/EXCEPTION rows PENDING again (the relay publishes them)' : 'delete DEAD/EXCEPTION rows (the audit trail keeps them)')
      .argument('<ids...>', 'outbox message ids')
      .option('--comment <text>', 'recorded in the audit trail')
      .action((ids: string[], opts: { comment?: string }) =>
        run(async (s, o) => {
          const result = name === 'retry' ? await s.service.retryOutbox(s.principal, ids, opts.comment) : await s.service.discardOutbox(s.principal, ids, opts.comment);
          return report(o, result, verb);
        }, g),
      );
  }

  const keep = (name: string, fallback: number | null) => (v: string | undefined): number | null => {
    if (v === undefined) return fallback;
    if (v === 'forever') return null;
    const ms = parseDuration(v);
    if (ms === undefined || ms < 60_000) throw new CliExit(ExitCode.Usage, `--${name} must be an age of at least a minute (30d, 12h, 90m) or "forever", got "${v}"`);
    return ms;
  };
  const days = (ms: number | null) => (ms === null ? 'forever' : `${Math.round(ms / 86_400_000)}d`);
  program
    .command('purge')
    .description(
      `delete RESENT/DISCARDED dead letters and audit entries past their retention (NEW dead letters are never purged); defaults: dead letters ${days(defaultAdminOptions.retention.deadLettersMs)}, audit ${days(defaultAdminOptions.retention.auditMs)}`,
    )
    .option('--dead-letters <age>', 'keep RESENT/DISCARDED dead letters this long after their status changed (30d, 12h, 90m, or "forever")')
    .option('--audit <age>', 'keep audit entries this long (or "forever")')
    .option('--journey <age>', 'also delete recorded journey steps (tmm_journey) older than this (only when given; the recording processes purge by journey.retentionMs themselves)')
    .option('--dry-run', 'count what would be deleted; delete nothing')
    .action((opts: { deadLetters?: string; audit?: string; journey?: string; dryRun?: boolean }) => {
      const policy = { deadLettersMs: keep('dead-letters', defaultAdminOptions.retention.deadLettersMs)(opts.deadLetters), auditMs: keep('audit', defaultAdminOptions.retention.auditMs)(opts.audit) };
      const journeyMs = opts.journey === undefined ? undefined : keep('journey', null)(opts.journey);
      return run(async (s, o) => {
        const r = await purgeExpired({ transactions: s.transactions, deadLetters: s.deadLetters, audit: s.audit }, policy, { dryRun: opts.dryRun });
        let journey: { journey: number; journeyBefore: number | null } | undefined;
        if (journeyMs !== undefined) {
          const before = journeyMs === null ? null : Date.now() - journeyMs;
          const n =
            before === null
              ? 0
              : r.dryRun
                ? Number((await s.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_journey WHERE at < ${sqlDialectFor(dialectOf(s.dataSource)).placeholder(1)}`, [before]))[0].n)
                : await s.journeyStore.purge(before);
          journey = { journey: n, journeyBefore: before };
        }
        if (o.json) return json({ ...r, ...journey });
        const verb = r.dryRun ? 'would delete' : 'deleted';
        out(`${verb} ${r.deadLetters} dead letters${r.deadLettersBefore === null ? ' (kept forever)' : ` (RESENT/DISCARDED before ${iso(r.deadLettersBefore)})`}`);
        out(`${verb} ${r.audit} audit entries${r.auditBefore === null ? ' (kept forever)' : ` (before ${iso(r.auditBefore)})`}`);
        if (journey) out(`${verb} ${journey.journey} journey steps${journey.journeyBefore === null ? ' (kept forever)' : ` (before ${iso(journey.journeyBefore)})`}`);
      }, g);
    });

  // The log-mode sender's EXCEPTION/DEAD transactions live on the sender's disks, owned by its process: these
  // commands go through that process's admin API (TmmAdmin), never the database.
  const txlog = program.command('txlog').description("the log-mode sender's EXCEPTION/DEAD transactions, through the sending process's admin API");
  const api = async (opts: { url?: string }, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> => {
    const base = opts.url ?? process.env.TMM_ADMIN_URL;
    const token = process.env.TMM_ADMIN_TOKEN;
    if (!base) throw new CliExit(ExitCode.Usage, 'txlog commands need --url or $TMM_ADMIN_URL (the admin API of the sending process)');
    if (!token) throw new CliExit(ExitCode.Usage, 'txlog commands need $TMM_ADMIN_TOKEN');
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (method === 'POST') {
      const session = (await (await fetch(new URL('/api/session', base), { headers })).json()) as { csrfToken?: string };
      headers['x-csrf-token'] = session.csrfToken ?? '';
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(new URL(path, base), { method, headers, body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined });
    const data = (await res.json()) as { error?: { code: string; message: string } };
    if (res.status === 404) throw new CliExit(ExitCode.NotFound, data.error?.message ?? `not found: ${path}`);
    if (!res.ok) throw new CliExit(ExitCode.Failure, `${method} ${path}: HTTP ${res.status} ${data.error?.code ?? ''} ${data.error?.message ?? ''}`.trim());
    return data;
  };
  txlog
    .command('list')
    .description('health of the log (degraded directories) and the EXCEPTION/DEAD transactions')
    .option('--url <url>', 'admin API of the sending process (default $TMM_ADMIN_URL)')
    .action(async (opts: { url?: string }) => {
      const r = (await api(opts, 'GET', '/api/txlog')) as { health: { status: string; inDoubt: number; pendingSend: number }; problems: { uid: string; state: string; since: number; topics: string[]; reason: string }[] };
      if (g().json) return json(r);
      out(`txlog ${r.health.status}  in doubt ${r.health.inDoubt}  to send ${r.health.pendingSend}  exceptions ${r.problems.length}`);
      printTable(r.problems.map((p) => ({ ...p, since: iso(p.since), topics: p.topics.join(',') })), ['uid', 'state', 'since', 'topics', 'reason']);
    });
  for (const [name, verb] of [['force-send', 'force-sent'], ['discard', 'discarded']] as const) {
    txlog
      .command(name)
      .description(name === 'force-send' ? 'publish the transaction’s messages now (audited)' : 'drop the transaction: never published (audited)')
      .argument('<uid>', 'transaction uid (from `tmm txlog list`)')
      .option('--url <url>', 'admin API of the sending process (default $TMM_ADMIN_URL)')
      .option('--comment <text>', 'recorded in the audit trail')
      .action(async (uid: string, opts: { url?: string; comment?: string }) => {
        const r = await api(opts, 'POST', `/api/txlog/exceptions/${encodeURIComponent(uid)}/${name}`, opts.comment ? { comment: opts.comment } : {});
        if (g().json) return json(r);
        out(`${verb} ${uid}`);
      });
  }

  // The broker side: no database. The topology is what the app's consumers declare (tmm.consumers.topology()).
  const amqpCmd = program.command('amqp').description('RabbitMQ maintenance (talks to the broker, not the database)');
  amqpCmd
    .command('migrate-to-quorum')
    .description(
      "move tmm's classic queues (work, retry, dead-letter) to quorum queues of the same names without losing a message; consumers stopped; resumable (run it again after a crash)",
    )
    .requiredOption('--topology <file>', 'JSON file with the queues as tmm declares them: JSON.stringify(tmm.consumers.topology())')
    .option('--url <url>', 'broker URL (default: $TMM_AMQP_URL)')
    .option('--prefetch <n>', 'messages moved at once per queue', intOption('prefetch', 1, 65_535), 256)
    .action(async (opts: { topology: string; url?: string; prefetch: number }) => {
      const url = opts.url ?? process.env.TMM_AMQP_URL;
      if (!url) throw new CliExit(ExitCode.Usage, 'migrate-to-quorum needs --url or $TMM_AMQP_URL');
      const topology = readTopology(opts.topology);
      // Loaded here: the database commands must work without amqplib installed.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { migrateQueuesToQuorum } = require('../../transport/amqp') as typeof import('../../transport/amqp');
      const r = await migrateQueuesToQuorum({ url, topology, prefetch: opts.prefetch });
      if (g().json) return json(r);
      printTable(
        r.queues.map((q) => ({ ...q, resumed: q.resumed ? 'yes' : 'no' })),
        ['queue', 'role', 'before', 'resumed', 'parked', 'restored', 'after'],
      );
      out(`${r.queues.filter((q) => q.after === 'quorum').length} of ${r.queues.length} queues are quorum queues; ${r.restored} messages moved`);
    });

  program
    .command('serve')
    .description('serve the admin API and console on this database (credentials from $TMM_ADMIN_TOKEN; resends are published by your application’s relay)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port', intOption('port', 0, 65_535), 8089)
    .option('--allowed-hosts <names>', "comma-separated host names clients use to reach it, or '*' (required with --host 0.0.0.0)")
    .action((opts: { host: string; port: number; allowedHosts?: string }) =>
      run(async (s) => {
        const token = process.env.TMM_ADMIN_TOKEN;
        const allowedHosts = opts.allowedHosts === undefined ? undefined : opts.allowedHosts.trim() === '*' ? '*' : opts.allowedHosts.split(',').map((n) => n.trim()).filter((n) => n.length > 0);
        const options = resolveAdminOptions({ host: opts.host, port: opts.port, allowedHosts, auth: token ? { tokens: { admin: token } } : {}, collector: { enabled: false } });
        const logger = new ConsoleLogger('info');
        const server = new AdminServer({ service: s.service, deadLetters: s.deadLetters, outboxAdmin: s.outboxAdmin, outbox: s.outbox, audit: s.audit, journey: s.journeyStore, logger }, options);
        const url = await server.listen();
        out(`tmm admin on ${url} (principal token:admin); Ctrl-C stops it`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
      }, g),
    );
  return program;
}

function readTopology(file: string): Topology {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CliExit(ExitCode.InvalidInput, `cannot read --topology ${file}: ${(e as Error).message}`);
  }
  const queues = (parsed as Topology | null)?.queues;
  if (!Array.isArray(queues) || queues.some((q) => typeof q !== 'object' || q === null || typeof q.name !== 'string')) {
    throw new CliExit(ExitCode.InvalidInput, `--topology ${file}: expected {"exchanges": [...], "queues": [{"name": ...}, ...]} (JSON.stringify(tmm.consumers.topology()))`);
  }
  return parsed as Topology;
}

function readPayload(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliExit(ExitCode.Usage, `cannot read --payload-file ${file}: ${(e as Error).message}`);
  }
}

async function bulkOrIds(
  s: Session,
  ids: string[],
  opts: { allMatching?: boolean; limit: number; to?: 'queue' | 'route'; comment?: string } & Parameters<typeof toFilter>[0],
  action: 'resend' | 'discard',
) {
  if (opts.allMatching) {
    if (ids.length > 0) throw new CliExit(ExitCode.Usage, 'give ids or --all-matching, not both');
    if (!hasCriteria(opts)) throw new CliExit(ExitCode.Usage, '--all-matching needs at least one of --topic, --consumer, --set, --fingerprint, --since, --until');
    const filter = toFilter(opts);
    return action === 'resend' ? s.service.resendMatching(s.principal, filter, opts.limit, { to: opts.to, comment: opts.comment }) : s.service.discardMatching(s.principal, filter, opts.limit, opts.comment);
  }
  if (ids.length === 0) throw new CliExit(ExitCode.Usage, `give the ids to ${action}, or --all-matching with filter options`);
  if (ids.length === 1) {
    // One id: a missing one is "not found", a wrong state a conflict, as for the API.
    if (!(await s.deadLetters.get(ids[0]))) throw new NotFoundError(`dead letter ${ids[0]}`);
  }
  return action === 'resend' ? s.service.resend(s.principal, ids, { to: opts.to, comment: opts.comment }) : s.service.discard(s.principal, ids, opts.comment);
}

function report(o: Globals, result: { done: string[]; skipped: { id: string; status: string }[]; messages?: Record<string, string>; matched?: number }, verb: string): number {
  if (o.json) out(JSON.stringify(result, null, 2));
  else {
    out(`${verb} ${result.done.length}${result.matched !== undefined ? ` of ${result.matched} matching` : ''}`);
    for (const id of result.done) out(`  ${id}${result.messages?.[id] ? ` -> message ${result.messages[id]}` : ''}`);
    for (const sk of result.skipped) out(`  skipped ${sk.id}: ${sk.status}`);
  }
  if (result.skipped.length === 0) return ExitCode.Ok;
  return result.skipped.every((sk) => sk.status === 'missing') && result.done.length === 0 ? ExitCode.NotFound : ExitCode.Conflict;
}

function exitCodeOf(e: unknown): ExitCode {
  if (e instanceof CliExit) return e.exitCode;
  if (e instanceof QueueMigrationError) {
    return e.reason === 'unavailable' ? ExitCode.Unavailable : e.reason === 'failed' ? ExitCode.Failure : ExitCode.Conflict;
  }
  if (e instanceof TopologyError) return ExitCode.InvalidInput;
  if (e instanceof NotFoundError) return ExitCode.NotFound;
  if (e instanceof StateConflictError) return ExitCode.Conflict;
  if (e instanceof InvalidInputError || e instanceof PayloadTooLargeError) return ExitCode.InvalidInput;
  if (TmmError.is(e) && e.code === 'TMM_CONFIG_INVALID') return ExitCode.Unavailable;
  const message = String((e as Error)?.message ?? '');
  if (/no such table|does not exist|doesn't exist/i.test(message)) return ExitCode.Unavailable;
  return ExitCode.Failure;
}

export async function main(argv: string[]): Promise<number> {
  let code: number = ExitCode.Ok;
  const run = async (fn: (s: Session, g: Globals) => Promise<number | void>, globals: () => Globals): Promise<void> => {
    const g = globals();
    for (const m of g.require ?? []) loadModule(m);
    const ds = await openDatabase(g.db ?? process.env.TMM_DB_URL, { schema: g.schema });
    try {
      const principal = g.as ?? `cli:${safeUser()}`;
      const session = new Session(ds, principal);
      try {
        const r = await fn(session, g);
        code = typeof r === 'number' ? r : ExitCode.Ok;
      } finally {
        await session.journey.stop(3000);
      }
    } finally {
      await ds.destroy().catch(() => undefined);
    }
  };
  const program = buildProgram(run);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0.
      return e.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    code = exitCodeOf(e);
    let message = redactSecrets((e as Error)?.message ?? String(e));
    if (code === ExitCode.Unavailable && /no such table|does not exist|doesn't exist/i.test(message)) message += " (tmm's tables are missing: run `tmm migrate`)";
    const json = argv.includes('--json');
    if (json) process.stdout.write(`${JSON.stringify({ error: { code: (e as TmmError).code ?? 'TMM_CLI', exitCode: code, message } })}\n`);
    process.stderr.write(`tmm: ${message}\n`);
  }
  return code;
}

/** Loads a --require module, resolved from the working directory as `node -r` would. */
function loadModule(name: string): void {
  const fromCwd = createRequire(join(process.cwd(), 'noop.js'));
  let path: string;
  try {
    path = fromCwd.resolve(name.startsWith('.') || isAbsolute(name) ? resolvePath(name) : name);
  } catch {
    throw new CliExit(ExitCode.Usage, `--require ${name}: module not found (from ${process.cwd()})`);
  }
  try {
    fromCwd(path);
  } catch (e) {
    throw new CliExit(ExitCode.Usage, `--require ${name}: could not load it: ${(e as Error)?.message ?? String(e)}`);
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
