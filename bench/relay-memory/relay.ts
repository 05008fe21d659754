/**
 * The relay process of bench/relay-memory: a Tmm on the benchmark's PostgreSQL schema whose relay
 * drains the outbox to RabbitMQ. Talks to its parent over IPC:
 *   → { type: 'ready', rss }        started, connected, relay not yet running (the idle baseline)
 *   ← { type: 'drain' }             start the relay
 *   → { type: 'progress', marked, published, failed, rss }   every 250 ms
 *   ← { type: 'stop' }              stop gracefully
 *   → { type: 'stopped', marked, published, failed, claimed, maxRssKb }   then exits
 */
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { AmqpTransport, Tmm, silentLogger } from '../../src/internal';
import { pgConnection } from '../support/postgres';

type Command = { type: 'drain' } | { type: 'stop' };

function send(message: Record<string, unknown>): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const schema = process.env.BENCH_SCHEMA!;
  const dataSource = new DataSource({ type: 'postgres', ...pgConnection, schema, extra: { options: `-c search_path=${schema}` } });
  const transport = new AmqpTransport({
    url: process.env.BENCH_AMQP_URL,
    logger: silentLogger,
    connectionName: 'tmm-bench-relay-memory',
    maxInFlight: Number(process.env.BENCH_WINDOW),
  });
  const tmm = new Tmm({
    dataSource,
    name: 'bench-relay-memory',
    transport,
    migrate: false,
    logger: 'warn',
    relay: { enabled: false },
    dispatcher: { concurrency: Number(process.env.BENCH_WINDOW) },
  });
  await tmm.start();
  await transport.connect();
  let progress: NodeJS.Timeout | undefined;
  const report = () => {
    const { marked, published, failed } = tmm.dispatcher.stats;
    send({ type: 'progress', marked, published, failed, rss: process.memoryUsage.rss() });
  };
  process.on('message', (command: Command) => {
    if (command.type === 'drain') {
      progress = setInterval(report, 250);
      void tmm.relay.start();
    } else if (command.type === 'stop') {
      void (async () => {
        clearInterval(progress);
        await tmm.stop();
        await dataSource.destroy();
        const { marked, published, failed } = tmm.dispatcher.stats;
        send({ type: 'stopped', marked, published, failed, claimed: tmm.relay.stats.claimed, maxRssKb: process.resourceUsage().maxRSS });
        process.disconnect();
      })().catch((e: unknown) => {
        console.error(e);
        process.exit(1);
      });
    }
  });
  send({ type: 'ready', rss: process.memoryUsage.rss() });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
