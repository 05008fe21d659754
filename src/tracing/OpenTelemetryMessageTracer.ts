import type * as Api from '@opentelemetry/api';
import { MissingPeerDependencyError, TmmError, requirePeer } from '../errors/TmmError';
import type { Headers, TransportMessage } from '../transport/Transport';
import { MessageTracer, ProcessInfo, ProcessTrace, SendInfo, TraceHeaders, noopMessageTracer } from './MessageTracer';

// Attribute names of the OpenTelemetry messaging semantic conventions (v1.27+), written out so that
// @opentelemetry/semantic-conventions is not needed at run time.
const SYSTEM = 'messaging.system';
const DESTINATION = 'messaging.destination.name';
const ROUTING_KEY = 'messaging.rabbitmq.destination.routing_key';
const MESSAGE_ID = 'messaging.message.id';
const CONVERSATION_ID = 'messaging.message.conversation_id';
const OPERATION_TYPE = 'messaging.operation.type';
const OPERATION_NAME = 'messaging.operation.name';
const CONSUMER_GROUP = 'messaging.consumer.group.name';
const ERROR_TYPE = 'error.type';

export interface OpenTelemetryTracerOptions {
  /** `messaging.system`: `rabbitmq` for the AMQP transport. */
  system: string;
  /** Instrumentation scope name (default `tmm`). */
  scope?: string;
}

/** Reads and writes W3C headers on tmm's Headers (string values only). */
const getter: Api.TextMapGetter<Readonly<Headers>> = {
  keys: (h) => Object.keys(h),
  get: (h, key) => {
    const v = h[key];
    return typeof v === 'string' ? v : undefined;
  },
};
const setter: Api.TextMapSetter<Headers> = {
  set: (h, key, value) => {
    h[key] = value;
  },
};

/**
 * MessageTracer on the OpenTelemetry API (`@opentelemetry/api`, an optional peer). The app brings the SDK
 * (tracer provider, propagator, context manager); with none registered the API hands out non-recording
 * spans and the propagator writes nothing, so no trace headers appear.
 */
export class OpenTelemetryMessageTracer implements MessageTracer {
  readonly enabled = true;
  private readonly tracer: Api.Tracer;

  constructor(
    private readonly api: typeof Api,
    private readonly options: OpenTelemetryTracerOptions,
  ) {
    this.tracer = api.trace.getTracer(options.scope ?? 'tmm');
  }

  /**
   * True while OpenTelemetry has nothing registered: no tracer provider behind the API's proxy (its
   * tracers hand out non-recording spans) and no propagator (it writes no headers). A span started then
   * is invisible and puts nothing on the message, so the send and publish hooks skip building it.
   * Checked per call: an SDK may be registered (or disabled) at any time.
   */
  private inert(): boolean {
    const { api } = this;
    const provider = api.trace.getTracerProvider();
    return provider instanceof api.ProxyTracerProvider && provider.getDelegateTracer('tmm') === undefined && api.propagation.fields().length === 0;
  }

  send(info: SendInfo, headers: Headers): void {
    const { api } = this;
    try {
      if (this.inert()) return;
      const span = this.tracer.startSpan(`send ${info.exchange}`, {
        kind: api.SpanKind.PRODUCER,
        attributes: {
          [SYSTEM]: this.options.system,
          [DESTINATION]: info.exchange,
          [ROUTING_KEY]: info.routingKey,
          [MESSAGE_ID]: info.id,
          [CONVERSATION_ID]: info.correlationId,
          [OPERATION_TYPE]: 'create',
          [OPERATION_NAME]: 'send',
          'tmm.topic': info.topic,
        },
      });
      api.propagation.inject(api.trace.setSpan(api.context.active(), span), headers, setter);
      span.end();
    } catch {
      // Tracing must never cost a message.
    }
  }

  publish(message: TransportMessage, fn: (message: TransportMessage) => Promise<void>): Promise<void> {
    const { api } = this;
    let span: Api.Span;
    let wire: TransportMessage;
    try {
      // With nothing registered and no span active, the span below would be invalid and the message go as it is.
      if (this.inert() && api.trace.getSpan(api.context.active()) === undefined) return fn(message);
      const stored = api.propagation.extract(api.ROOT_CONTEXT, message.headers, getter);
      const storedSpan = api.trace.getSpanContext(stored);
      span = this.tracer.startSpan(
        `publish ${message.exchange}`,
        {
          kind: api.SpanKind.PRODUCER,
          links: storedSpan && api.isSpanContextValid(storedSpan) ? [{ context: storedSpan }] : [],
          attributes: {
            [SYSTEM]: this.options.system,
            [DESTINATION]: message.exchange,
            [ROUTING_KEY]: message.routingKey,
            [MESSAGE_ID]: message.id,
            [CONVERSATION_ID]: stringHeader(message.headers, TraceHeaders.correlationId),
            [OPERATION_TYPE]: 'send',
            [OPERATION_NAME]: 'publish',
            'tmm.publish.attempt': Number(message.headers['tmm-attempt'] ?? 1),
          },
        },
        storedSpan ? stored : api.context.active(),
      );
      if (!api.isSpanContextValid(span.spanContext())) {
        // No SDK registered (the API's no-op tracer): nothing to propagate, so the message goes as it is.
        span.end();
        return fn(message);
      }
      const headers: Headers = { ...message.headers };
      delete headers[TraceHeaders.tracestate];
      api.propagation.inject(api.trace.setSpan(api.context.active(), span), headers, setter);
      wire = { ...message, headers };
    } catch {
      return fn(message);
    }
    return fn(wire).then(
      () => span.end(),
      (e: unknown) => {
        fail(api, span, e);
        span.end();
        throw e;
      },
    );
  }

  process(info: ProcessInfo, fn: (trace: ProcessTrace) => Promise<void>): Promise<void> {
    const { api } = this;
    let span: Api.Span;
    let ctx: Api.Context;
    try {
      const parent = api.propagation.extract(api.ROOT_CONTEXT, info.headers, getter);
      span = this.tracer.startSpan(
        `process ${info.queue}`,
        {
          kind: api.SpanKind.CONSUMER,
          attributes: {
            [SYSTEM]: this.options.system,
            [DESTINATION]: info.exchange,
            [ROUTING_KEY]: info.routingKey,
            [MESSAGE_ID]: info.messageId,
            [CONVERSATION_ID]: stringHeader(info.headers, TraceHeaders.correlationId),
            [CONSUMER_GROUP]: info.queue,
            [OPERATION_TYPE]: 'process',
            [OPERATION_NAME]: 'process',
            'tmm.consumer': info.consumer,
            'tmm.consume.attempt': info.attempt,
          },
        },
        parent,
      );
      ctx = api.trace.setSpan(parent, span);
    } catch {
      return fn(noopProcessTrace);
    }
    const trace: ProcessTrace = {
      event: (name, attributes) => span.addEvent(name, attributes),
      failed: (error) => fail(api, span, error),
    };
    return api.context.with(ctx, () => fn(trace)).finally(() => span.end());
  }
}

const noopProcessTrace: ProcessTrace = { event() {}, failed() {} };

function fail(api: typeof Api, span: Api.Span, error: unknown): void {
  const type = TmmError.is(error) ? error.code : error instanceof Error ? error.name : typeof error;
  span.setAttribute(ERROR_TYPE, type);
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

function stringHeader(h: Readonly<Headers>, key: string): string | undefined {
  const v = h[key];
  return typeof v === 'string' ? v : undefined;
}

/**
 * The tracer the `tracing` option asks for: `false` (default) → the no-op tracer; `'auto'` → OpenTelemetry
 * when `@opentelemetry/api` is installed, else the no-op tracer; `true` → OpenTelemetry, or a
 * MissingPeerDependencyError naming the package.
 */
export function messageTracerFor(tracing: boolean | 'auto', options: OpenTelemetryTracerOptions): MessageTracer {
  if (tracing === false) return noopMessageTracer;
  let api: typeof Api;
  try {
    api = requirePeer<typeof Api>('@opentelemetry/api', 'tracing (the tracing option)');
  } catch (e) {
    if (tracing === 'auto' && e instanceof MissingPeerDependencyError) return noopMessageTracer;
    throw e;
  }
  return new OpenTelemetryMessageTracer(api, options);
}
