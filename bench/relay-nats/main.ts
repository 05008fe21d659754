/**
 * Relay throughput benchmark on NATS JetStream: the relay (NatsTransport, each publish awaited for its
 * PubAck) against raw @nats-io/jetstream publishing the same messages (same body, Nats-Msg-Id and headers,
 * built with NatsTransport's own mapping) to the same stream with the same in-flight window and the same
 * connection options. The rounds, checks and the JSON last line are
 * bench/support/relayBench.ts's.
 */
import 'reflect-metadata';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { defaultDispatcherOptions, silentLogger } from '../../src/internal';
import { NatsTransport, defaultNatsTransportOptions } from '../../src/transport/nats';
import { NATS_URL, publishWindowedJs, publishWindowedPubAcks } from '../support/nats';
import { benchNames, runRelayBench } from '../support/relayBench';

/** The relay's window is the smaller of the Dispatcher's concurrency and the transport's maxInFlight. */
const WINDOW = Number(process.env.BENCH_WINDOW ?? Math.min(defaultDispatcherOptions.concurrency, defaultNatsTransportOptions.maxInFlight));

async function main(): Promise<void> {
  const { exchange, queue } = benchNames();
  await runRelayBench({
    bench: 'relay-nats',
    schemaName: 'tmm_bench_relay_nats',
    exchange,
    window: WINDOW,
    broker: async () => {
      const transport = new NatsTransport({ servers: NATS_URL, logger: silentLogger, connectionName: 'tmm-bench-relay-nats', maxInFlight: WINDOW });
      await transport.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] });
      const { stream, subject } = transport.queueStream(queue);
      // BENCH_RAW_ASYNC_TRACES=1: the raw client keeps the client's default async traces (two Errors per
      // request) that NatsTransport turns off; by default both sides use the same connection options.
      // BENCH_RAW_PUBLISH=pubacks: the raw side awaits its PubAcks as NatsTransport does (NatsPubAcks)
      // instead of JetStreamClient.publish, so the ratio is what the relay adds to the same publishes.
      const nc = await connect({ servers: NATS_URL, name: 'tmm-bench-relay-nats-raw', noAsyncTraces: process.env.BENCH_RAW_ASYNC_TRACES !== '1' });
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      return {
        rawName: process.env.BENCH_RAW_PUBLISH === 'pubacks' ? 'NATS core publishes + one PubAck inbox (NatsPubAcks)' : '@nats-io/jetstream',
        transport,
        prepareRaw: (messages) => messages,
        publishRaw: (messages) =>
          process.env.BENCH_RAW_PUBLISH === 'pubacks' ? publishWindowedPubAcks(nc, subject, messages, WINDOW) : publishWindowedJs(js, subject, messages, WINDOW),
        depth: async () => (await jsm.streams.info(stream)).state.messages,
        purge: async () => void (await jsm.streams.purge(stream)),
        cleanup: async () => {
          const cleanup = new NatsTransport({ servers: NATS_URL, logger: silentLogger });
          await cleanup.remove({ exchanges: [{ name: exchange }], queues: [{ name: queue }] }).catch(() => undefined);
          await cleanup.close();
          await nc.close();
        },
      };
    },
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
