// Primary lane: TypeORM 1.x with better-sqlite3, pg and mysql2.
// TypeScript goes through swc with legacy decorators and decorator metadata, so that
// `design:paramtypes` (used by contracts and consumers) survives the transform exactly as tsc emits it.
const swc = JSON.parse(require('fs').readFileSync(__dirname + '/.swcrc.jest.json', 'utf8'));

/** Packages shipped as ES modules only (inversify 8); jest's CommonJS runtime needs them transformed. */
const esmPackages = ['inversify', '@inversifyjs'];

module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j|mj)s$': ['@swc/jest', { ...swc, swcrc: false }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleNameMapper: {
    '^tmm$': '<rootDir>/src/index.ts',
    '^tmm/decorators$': '<rootDir>/decorators/index.ts',
    '^tmm/testing$': '<rootDir>/src/testing/index.ts',
    '^tmm/admin$': '<rootDir>/src/admin/index.ts',
    '^tmm/amqp$': '<rootDir>/src/transport/amqp/index.ts',
    '^tmm/nats$': '<rootDir>/src/transport/nats/index.ts',
    '^tmm/inversify$': '<rootDir>/src/di/index.ts',
    '^tmm/nestjs$': '<rootDir>/src/nestjs/index.ts',
  },
  setupFiles: ['reflect-metadata'],
  testTimeout: 60000,
  maxWorkers: 2,
};
