/**
 * An OpenTelemetry SDK for tests, as an app would register it: a tracer provider exporting to memory, the
 * W3C propagator and the AsyncLocalStorage context manager, all global. Spans are turned into plain JSON
 * (SpanJson) so a fixture process can report them on stdout.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface SpanJson {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  links: { traceId: string; spanId: string }[];
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  status: number;
}

export function spanJson(s: ReadableSpan): SpanJson {
  const c = s.spanContext();
  return {
    name: s.name,
    kind: s.kind,
    traceId: c.traceId,
    spanId: c.spanId,
    parentSpanId: s.parentSpanContext?.spanId,
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })),
    attributes: { ...s.attributes },
    events: s.events.map((e) => ({ name: e.name, attributes: { ...(e.attributes ?? {}) } })),
    status: s.status.code,
  };
}

export interface TestTracing {
  exporter: InMemorySpanExporter;
  spans(): SpanJson[];
  shutdown(): Promise<void>;
}

/** Registers the SDK globally; shutdown() unregisters it. */
export function installTracing(): TestTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    exporter,
    spans: () => exporter.getFinishedSpans().map(spanJson),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
