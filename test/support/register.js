// Lets a child process spawned by a test run TypeScript from src/ and test/ directly (node -r ./test/support/register.js x.ts),
// with the same swc settings as jest (legacy decorators + decorator metadata), and `tmm` mapped to src/.
const fs = require('fs');
const path = require('path');
const Module = require('module');
const { transformSync } = require('@swc/core');

const root = path.resolve(__dirname, '..', '..');
const swc = JSON.parse(fs.readFileSync(path.join(root, '.swcrc.jest.json'), 'utf8'));
const aliases = {
  tmm: path.join(root, 'src', 'index.ts'),
  'tmm/decorators': path.join(root, 'decorators', 'index.ts'),
  'tmm/testing': path.join(root, 'src', 'testing', 'index.ts'),
  'tmm/admin': path.join(root, 'src', 'admin', 'index.ts'),
  'tmm/amqp': path.join(root, 'src', 'transport', 'amqp', 'index.ts'),
  'tmm/nats': path.join(root, 'src', 'transport', 'nats', 'index.ts'),
  'tmm/inversify': path.join(root, 'src', 'di', 'index.ts'),
  'tmm/nestjs': path.join(root, 'src', 'nestjs', 'index.ts'),
};

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (aliases[request]) return aliases[request];
  if (parent && parent.filename && parent.filename.endsWith('.ts') && request.startsWith('.')) {
    const base = path.resolve(path.dirname(parent.filename), request);
    for (const candidate of [base + '.ts', path.join(base, 'index.ts')]) if (fs.existsSync(candidate)) return candidate;
  }
  return resolve.call(this, request, parent, ...rest);
};

require.extensions['.ts'] = function (module, filename) {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), { ...swc, swcrc: false, filename, sourceMaps: 'inline' });
  module._compile(code, filename);
};
require('reflect-metadata');
