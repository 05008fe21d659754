import { Counter, Histogram, Registry } from 'prom-client';
import type { Delivery, DeliveryHandler, Headers, SubscribeOptions, Subscription, Topology, Transport, TransportFeatures, TransportMessage } from '../../transport/Transport';

/**
 * A Transport that measures the one it wraps, for Prometheus: publishes (and their confirm latency,
 * by result and error code) and, per queue, how long each delivery takes from arrival to its ack or
 * nack — for a @Consumer's queue, that is the consume duration. Everything else passes through unchanged.
 *
 * ```ts
 * const transport = new MeteredTransport(new AmqpTransport({ url }));
 * new Tmm({ dataSource, transport });   // TmmAdmin finds these metrics and serves them on /metrics
 * ```
 */
export class MeteredTransport implements Transport {
  readonly registry = new Registry();
  private readonly publishes: Counter<'result' | 'code'>;
  private readonly publishSeconds: Histogram<'result'>;
  private readonly consumeSeconds: Histogram<'queue' | 'outcome'>;

  constructor(readonly inner: Transport) {
    this.publishes = new Counter({ name: 'tmm_transport_publishes_total', help: 'Publishes by result (confirmed|failed) and error code', labelNames: ['result', 'code'], registers: [this.registry] });
    this.publishSeconds = new Histogram({
      name: 'tmm_transport_publish_seconds',
      help: 'Time from publish to broker confirm (or failure)',
      labelNames: ['result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [this.registry],
    });
    this.consumeSeconds = new Histogram({
      name: 'tmm_consume_seconds',
      help: 'Time from delivery to ack/nack, per queue (a consumer) and outcome',
      labelNames: ['queue', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
  }

  get features(): TransportFeatures {
    return this.inner.features;
  }

  get isConnected(): boolean | undefined {
    return this.inner.isConnected;
  }

  /** The inner transport's stamp (a SET router's set), which the producer stores with the outbox row. */
  get stampHeaders(): ((message: TransportMessage) => Headers | undefined) | undefined {
    return this.inner.stampHeaders ? (m) => this.inner.stampHeaders!(m) : undefined;
  }

  declare(topology: Topology): Promise<void> {
    return this.inner.declare(topology);
  }

  async publish(message: TransportMessage): Promise<void> {
    const end = this.publishSeconds.startTimer();
    try {
      await this.inner.publish(message);
      end({ result: 'confirmed' });
      this.publishes.inc({ result: 'confirmed', code: '' });
    } catch (e) {
      end({ result: 'failed' });
      this.publishes.inc({ result: 'failed', code: String((e as { code?: unknown })?.code ?? 'unknown') });
      throw e;
    }
  }

  subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription> {
    const queue = options.queue.name;
    return this.inner.subscribe(options, (delivery: Delivery) => {
      const end = this.consumeSeconds.startTimer({ queue });
      let observed = false;
      const observe = (outcome: string) => {
        if (!observed) {
          observed = true;
          end({ outcome });
        }
      };
      const measured: Delivery = {
        message: delivery.message,
        queue: delivery.queue,
        redelivered: delivery.redelivered,
        ack: () => (observe('ack'), delivery.ack()),
        nack: (o) => (observe(o.requeue ? 'requeue' : 'reject'), delivery.nack(o)),
      };
      return handler(measured);
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
