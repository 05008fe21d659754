// Checks that a service answers a real client (not just an open port). Exit 0 = up.
// `ensure-databases` creates the `test` database on PostgreSQL and MariaDB when it is missing.
// Connection settings follow the TMM_* environment variables the tests use.
const what = process.argv[2];
const pg = { host: process.env.TMM_PG_HOST || '127.0.0.1', port: Number(process.env.TMM_PG_PORT || 5432), user: process.env.TMM_PG_USER || 'postgres' };
const my = { host: process.env.TMM_MYSQL_HOST || '127.0.0.1', port: Number(process.env.TMM_MYSQL_PORT || 3306), user: process.env.TMM_MYSQL_USER || 'root', password: process.env.TMM_MYSQL_PASSWORD || '' };
const amqpUrl = process.env.TMM_AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672';
const dbName = process.env.TMM_PG_DATABASE || 'test';
const natsUrl = process.env.TMM_NATS_URL || 'nats://127.0.0.1:4222';

async function postgres(database = dbName) {
  const { Client } = require('pg');
  const c = new Client({ ...pg, database, connectionTimeoutMillis: 3000 });
  await c.connect();
  await c.query('SELECT 1');
  await c.end();
}
async function mariadb() {
  const mysql = require('mysql2/promise');
  const c = await mysql.createConnection({ ...my, connectTimeout: 3000 });
  await c.query('SELECT 1');
  await c.end();
}
async function rabbitmq() {
  const amqp = require('amqplib');
  const c = await amqp.connect(amqpUrl, { timeout: 3000 });
  await c.close();
}
async function nats() {
  // A real client, and JetStream must be enabled (an account info request answers).
  const { connect } = require('@nats-io/transport-node');
  const { jetstreamManager } = require('@nats-io/jetstream');
  const nc = await connect({ servers: natsUrl, timeout: 3000, reconnect: false });
  try {
    await jetstreamManager(nc, { timeout: 3000 });
  } catch (e) {
    throw new Error(`NATS answers at ${natsUrl} but JetStream does not (start nats-server with -js): ${e && e.message ? e.message : e}`);
  } finally {
    await nc.close();
  }
}
async function ensureDatabases() {
  const { Client } = require('pg');
  const c = new Client({ ...pg, database: 'postgres', connectionTimeoutMillis: 3000 });
  await c.connect();
  const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
  if (r.rowCount === 0) await c.query(`CREATE DATABASE "${dbName}"`);
  await c.end();
  const mysql = require('mysql2/promise');
  const m = await mysql.createConnection({ ...my, connectTimeout: 3000 });
  await m.query('CREATE DATABASE IF NOT EXISTS test');
  await m.end();
}

const checks = { postgres: () => postgres(), mariadb, rabbitmq, nats, 'ensure-databases': ensureDatabases };
if (!checks[what]) {
  console.error(`usage: node scripts/check-services.js ${Object.keys(checks).join('|')}`);
  process.exit(2);
}
checks[what]().then(
  () => process.exit(0),
  (e) => {
    console.error(`${what}: ${e && e.message ? e.message : e}`);
    process.exit(1);
  },
);
