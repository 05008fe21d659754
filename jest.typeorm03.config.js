// Compatibility lane: the transaction, outbox, inbox and journey contract suites on TypeORM 0.3 with the `sqlite3` package,
// and the commit pipeline on PostgreSQL.
// `typeorm` resolves to the `typeorm03` alias (npm:typeorm@0.3.x) for the code under test too.
const base = require('./jest.config.js');

module.exports = {
  ...base,
  displayName: 'typeorm-0.3 + sqlite3',
  testMatch: [
    '<rootDir>/test/contract/TransactionManager.contract.test.ts',
    '<rootDir>/test/contract/OutboxStore.contract.test.ts',
    '<rootDir>/test/contract/InboxStore.contract.test.ts',
    '<rootDir>/test/contract/JourneyStore.contract.test.ts',
    '<rootDir>/test/integration/producer.test.ts',
    // PostgreSQL on this lane too: the COMMIT pipelined behind the outbox INSERT is TypeORM 0.3's commitTransaction.
    '<rootDir>/test/integration/commit-pipeline.test.ts',
  ],
  moduleNameMapper: {
    ...base.moduleNameMapper,
    '^typeorm$': 'typeorm03',
    '^typeorm/(.*)$': 'typeorm03/$1',
  },
  testEnvironmentOptions: {},
  globals: { TMM_TYPEORM_LANE: 'typeorm03' },
};
