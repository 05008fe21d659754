import type { DeliveryHandler, SubscribeOptions, Subscription, Topology, Transport, TransportFeatures, TransportMessage } from '../transport/Transport';
import type { MessageTracer } from './MessageTracer';

/**
 * The publish path's hook: a Transport whose publish() runs in the tracer's `publish` span (and puts that
 * span's context on the wire); everything else goes to the inner transport as it is. The producer's and
 * the relay's publishes go through it; the consumer's retry and dead-letter copies do not (they keep the
 * headers of the delivery they copy).
 */
export class TracingTransport implements Transport {
  constructor(
    readonly inner: Transport,
    private readonly tracer: MessageTracer,
  ) {}

  /** `inner` itself when tracing is off: the publish path then costs nothing extra. */
  static wrap(inner: Transport, tracer: MessageTracer): Transport {
    return tracer.enabled ? new TracingTransport(inner, tracer) : inner;
  }

  get features(): TransportFeatures {
    return this.inner.features;
  }

  get isConnected(): boolean | undefined {
    return this.inner.isConnected;
  }

  /** Passed through: a routing transport's stamp (the SET router's `tmm-set`) must survive the wrapper. */
  get stampHeaders(): Transport['stampHeaders'] {
    return this.inner.stampHeaders ? (m) => this.inner.stampHeaders!(m) : undefined;
  }

  declare(topology: Topology): Promise<void> {
    return this.inner.declare(topology);
  }

  publish(message: TransportMessage): Promise<void> {
    return this.tracer.publish(message, (m) => this.inner.publish(m));
  }

  subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription> {
    return this.inner.subscribe(options, handler);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
