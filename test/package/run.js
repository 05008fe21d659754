#!/usr/bin/env node
// The package test: what a user gets from `npm install tmm`. Packs this checkout (npm pack runs the
// prepack build), installs the tarball into fresh apps outside the repo, compiles each with plain
// tsc under its own tsconfig and runs it with node against the real services:
//   (a) TypeORM 0.3 + sqlite3 + inversify 6      (moduleResolution node16)
//   (b) TypeORM 1.x + pg + RabbitMQ + inversify 8 (moduleResolution nodenext; transport rebound in the container)
//   (c) no DI container, TypeORM 1.x + mysql2     (node16 build; also type-checked under bundler)
//   (d) NestJS 10 + TypeORM 1.x + pg + RabbitMQ   (node16; TmmModule, discovery, start on bootstrap, drain on close)
// Each must show: one copy of TypeORM in `npm ls`, the committed payment's message consumed, the rolled-back
// one's never. Installs come from the registry (or npm's cache); nothing else is fetched.
// Prints one line per check and a closing `package: N passed, N failed`; writes .tmp/package-result.json.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const repo = path.resolve(__dirname, '..', '..');
const only = process.argv.slice(2);
const results = [];
const check = (name, ok, detail) => {
  results.push({ name, ok: !!ok, detail });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail ? `\n     ${String(detail).split('\n').join('\n     ')}` : ''}`);
};
const sh = (cmd, args, cwd, env = {}) => {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
};

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tmm-package-'));
const t0 = Date.now();
try {
  // An app must resolve only what it installed: a node_modules in a directory above it (a stray one in the temp
  // directory, say) would hand it packages it did not install, and the "missing optional peer" checks would pass or
  // fail for the wrong reason. Named here, before the checks it would spoil.
  const above = [];
  for (let d = path.dirname(work); ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'node_modules'))) above.push(path.join(d, 'node_modules'));
    if (path.dirname(d) === d) break;
  }
  check(`no node_modules above the apps' directory (${path.dirname(work)})`, above.length === 0, `found ${above.join(', ')}: remove it, or set TMPDIR to a directory with none above it`);
  const pack = sh('npm', ['pack', '--silent', '--pack-destination', work], repo);
  const tarball = path.join(work, pack.stdout.trim().split('\n').pop() ?? '');
  check('npm pack builds and packs a fresh checkout', pack.code === 0 && fs.existsSync(tarball), pack.out.slice(-2000));
  if (!fs.existsSync(tarball)) throw new Error('no tarball');
  const listing = sh('tar', ['-tzf', tarball], work).stdout.split('\n').filter(Boolean);
  const bad = listing.filter((f) => /\.ts$/.test(f) && !/\.d\.ts$/.test(f) || /\/(test|bench|samples|\.ci)\//.test(f) || /internal\.(js|d\.ts)$/.test(f) || /\.map$/.test(f));
  check(`the tarball holds dist only (${listing.length} files, no sources, tests, benches, maps)`, bad.length === 0 && listing.includes('package/dist/src/index.js') && listing.includes('package/dist/src/admin/console/index.html'), bad.slice(0, 10).join('\n'));

  for (const app of fs.readdirSync(path.join(__dirname, 'apps')).sort()) {
    if (only.length && !only.some((o) => app.startsWith(o))) continue;
    const run = crypto.randomBytes(4).toString('hex');
    const dir = path.join(work, app);
    fs.cpSync(path.join(__dirname, 'apps', app), dir, { recursive: true });
    fs.cpSync(path.join(__dirname, 'shared'), path.join(dir, 'src', 'shared'), { recursive: true });
    const pj = path.join(dir, 'package.json');
    fs.writeFileSync(pj, fs.readFileSync(pj, 'utf8').replace('TMM_TARBALL', `file:${tarball}`));
    const started = Date.now();
    const install = sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], dir);
    check(`${app}: npm install of the tarball (${Math.round((Date.now() - started) / 1000)} s)`, install.code === 0, install.out.slice(-3000));
    if (install.code !== 0) continue;
    const ls = sh('npm', ['ls', 'typeorm', '--all', '--parseable'], dir);
    const copies = ls.stdout.split('\n').filter((l) => l.trim() && /node_modules[\\/]typeorm$/.test(l.trim()));
    check(`${app}: one copy of TypeORM in npm ls (found ${copies.length})`, copies.length === 1, ls.out);
    const nested = fs.existsSync(path.join(dir, 'node_modules', 'tmm', 'node_modules'))
      ? fs.readdirSync(path.join(dir, 'node_modules', 'tmm', 'node_modules'))
      : [];
    check(`${app}: tmm brings no nested copies of peers`, !nested.some((n) => ['typeorm', 'inversify', 'amqplib', 'class-validator', 'reflect-metadata', '@nestjs'].includes(n)), nested.join(', '));
    const tsc = sh(path.join(dir, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], dir);
    check(`${app}: compiles with plain tsc (its own tsconfig)`, tsc.code === 0, tsc.out.slice(-3000));
    if (fs.existsSync(path.join(dir, 'tsconfig.bundler.json'))) {
      const b = sh(path.join(dir, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.bundler.json'], dir);
      check(`${app}: type-checks under moduleResolution bundler`, b.code === 0, b.out.slice(-3000));
    }
    if (tsc.code !== 0) continue;
    const env = {
      TMM_PKG_RUN: run,
      TMM_AMQP_URL: process.env.TMM_AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672',
      TMM_PKG_SQLITE_FILE: path.join(dir, 'app.sqlite'),
      TMM_PKG_PG_SCHEMA: `tmm_pkg_${run}`,
      TMM_PKG_MYSQL_DB: `tmm_pkg_${run}`,
    };
    const exec = spawnSync('node', ['dist/main.js'], { cwd: dir, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
    const out = `${exec.stdout ?? ''}`.trim().split('\n').pop() ?? '';
    let r = {};
    try {
      r = JSON.parse(out);
    } catch {
      r = { error: `no result line: ${(exec.stdout ?? '').slice(-1500)}${(exec.stderr ?? '').slice(-1500)}` };
    }
    check(`${app}: runs with node (exit ${exec.status})`, exec.status === 0 && !r.error && !r.stopError, r.error || r.stopError || (exec.stderr ?? '').slice(-2000));
    check(`${app}: the committed payment's message was consumed`, JSON.stringify(r.tickets) === '["committed-1"]' || (Array.isArray(r.tickets) && r.tickets.includes('committed-1')), JSON.stringify(r));
    check(`${app}: the rolled-back payment was not stored and its message never published`,
      r.rolledBackThrew === true && Array.isArray(r.tickets) && !r.tickets.includes('rolled-back-1') && JSON.stringify(r.payments) === '["committed-1"]', JSON.stringify(r));
    check(`${app}: health() ok while running`, r.healthOk === true, JSON.stringify(r));
    const nestLine = `${exec.stdout ?? ''}`.split('\n').find((l) => l.includes('"nestVersion"'));
    if (nestLine) {
      const v = JSON.parse(nestLine);
      const major = (s) => Number(String(s).split('.')[0]);
      check(`${app}: ran on the NestJS major its package.json asks for (@nestjs/core ${v.nestVersion}, @nestjs/common ${v.nestCommonVersion})`,
        major(v.nestVersion) === major(JSON.parse(fs.readFileSync(pj, 'utf8')).dependencies['@nestjs/core'].replace(/^\D+/, '')) && major(v.nestCommonVersion) === major(v.nestVersion), nestLine);
    }
    const peersLine = `${exec.stdout ?? ''}`.split('\n').find((l) => l.includes('"missingPeers"'));
    if (peersLine) {
      const m = JSON.parse(peersLine).missingPeers;
      check(`${app}: a missing optional peer is named when its entry point is loaded (inversify, fastify)`,
        /^TMM_MISSING_PEER: .*npm install inversify/.test(m['tmm/inversify']) && /^TMM_MISSING_PEER: .*npm install fastify/.test(m['tmm/admin']), JSON.stringify(m));
    }
  }
} catch (e) {
  check('package test ran to the end', false, e && e.stack);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
fs.mkdirSync(path.join(repo, '.tmp'), { recursive: true });
fs.writeFileSync(path.join(repo, '.tmp', 'package-result.json'), JSON.stringify({ passed, failed, results, seconds: Math.round((Date.now() - t0) / 1000) }));
console.log(`package: ${passed} passed, ${failed} failed (${Math.round((Date.now() - t0) / 1000)} s)`);
process.exit(failed === 0 ? 0 : 1);
