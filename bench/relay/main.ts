/**
 * Relay throughput benchmark on RabbitMQ: the relay (AmqpTransport, publisher confirms) against raw amqplib
 * publishing the same messages (same properties, persistent + mandatory) on a confirm channel with the same
 * in-flight window. The rounds, checks and the JSON last line are bench/support/relayBench.ts's.
 */
import 'reflect-metadata';
import * as amqp from 'amqplib';
import { AmqpTransport, defaultAmqpTransportOptions, defaultDispatcherOptions, silentLogger } from '../../src/internal';
import { AMQP_URL, publishWindowed, queueDepth, toRawMessage } from '../support/amqp';
import { benchNames, runRelayBench } from '../support/relayBench';

/** The relay's window is the smaller of the Dispatcher's concurrency and the transport's maxInFlight. */
const WINDOW = Number(process.env.BENCH_WINDOW ?? Math.min(defaultDispatcherOptions.concurrency, defaultAmqpTransportOptions.maxInFlight));

async function main(): Promise<void> {
  const { exchange, queue } = benchNames();
  await runRelayBench({
    bench: 'relay',
    schemaName: 'tmm_bench_relay',
    exchange,
    window: WINDOW,
    broker: async () => {
      const conn = await amqp.connect(AMQP_URL);
      const admin = await conn.createChannel();
      const confirm = await conn.createConfirmChannel();
      await admin.assertExchange(exchange, 'topic', { durable: true });
      await admin.assertQueue(queue, { durable: true });
      await admin.bindQueue(queue, exchange, '#');
      return {
        rawName: 'amqplib',
        transport: new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-bench-relay', maxInFlight: WINDOW }),
        prepareRaw: (messages) => messages.map((m) => toRawMessage(m, 'tmm-bench-relay')),
        publishRaw: (messages) => publishWindowed(confirm, messages, WINDOW),
        depth: (expected) => queueDepth(admin, queue, expected),
        purge: async () => void (await admin.purgeQueue(queue)),
        cleanup: async () => {
          await admin.deleteQueue(queue).catch(() => undefined);
          await admin.deleteExchange(exchange).catch(() => undefined);
          await conn.close();
        },
      };
    },
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
