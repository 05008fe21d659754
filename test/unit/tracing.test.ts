/**
 * The tracer the `tracing` option picks, and what the OpenTelemetry adapter writes when the app registered
 * no SDK (the API's no-op provider and propagator): nothing.
 */
import * as api from '@opentelemetry/api';
import { MissingPeerDependencyError, OpenTelemetryMessageTracer, TraceHeaders, messageTracerFor, noopMessageTracer, resolveTmmOptions, stampOutgoing, AsyncLocalContextStore, setCorrelationId, newContext } from '../../src/internal';
import { DataSource } from 'typeorm';
import { installTracing } from '../support/tracing';

const info = { id: 'm-1', topic: 't', exchange: 'x', routingKey: 'k' };

describe('messageTracerFor', () => {
  it('false: the no-op tracer, whatever is installed', () => {
    expect(messageTracerFor(false, { system: 'rabbitmq' })).toBe(noopMessageTracer);
    expect(noopMessageTracer.enabled).toBe(false);
  });

  it("'auto' and true: the OpenTelemetry tracer when @opentelemetry/api is installed", () => {
    expect(messageTracerFor('auto', { system: 'rabbitmq' })).toBeInstanceOf(OpenTelemetryMessageTracer);
    expect(messageTracerFor(true, { system: 'rabbitmq' })).toBeInstanceOf(OpenTelemetryMessageTracer);
  });

  describe('without @opentelemetry/api', () => {
    beforeEach(() => {
      jest.resetModules();
      jest.doMock('@opentelemetry/api', () => {
        throw Object.assign(new Error("Cannot find module '@opentelemetry/api' from 'x.js'"), { code: 'MODULE_NOT_FOUND' });
      });
    });
    afterEach(() => jest.dontMock('@opentelemetry/api'));

    it("'auto': the no-op tracer; true: MissingPeerDependencyError naming the package", () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('../../src/tracing/OpenTelemetryMessageTracer') as typeof import('../../src/tracing/OpenTelemetryMessageTracer');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { noopMessageTracer: freshNoop } = require('../../src/tracing/MessageTracer') as typeof import('../../src/tracing/MessageTracer');
      expect(fresh.messageTracerFor('auto', { system: 'rabbitmq' })).toBe(freshNoop);
      expect(() => fresh.messageTracerFor(true, { system: 'rabbitmq' })).toThrow(/needs the package "@opentelemetry\/api"/);
      try {
        fresh.messageTracerFor(true, { system: 'rabbitmq' });
      } catch (e) {
        expect((e as MissingPeerDependencyError).code).toBe('TMM_MISSING_PEER');
      }
    });
  });
});

describe('the OpenTelemetry tracer with no SDK registered', () => {
  it('writes no trace headers and runs publish and process as they are', async () => {
    const tracer = new OpenTelemetryMessageTracer(api, { system: 'rabbitmq' });
    const headers = {};
    tracer.send({ ...info, correlationId: 'c' }, headers);
    expect(headers).toEqual({});
    const sent: unknown[] = [];
    await tracer.publish({ id: 'm-1', exchange: 'x', routingKey: 'k', body: Buffer.from('{}'), headers: { a: 1 }, contentType: 'application/json', timestamp: 0 }, async (m) => void sent.push(m.headers));
    expect(sent).toEqual([{ a: 1 }]);
    await expect(tracer.process({ messageId: 'm', exchange: 'x', routingKey: 'k', queue: 'q', consumer: 'C.m', attempt: 1, headers: {} }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});

describe('the OpenTelemetry tracer built before the SDK is registered', () => {
  // It skips building spans while nothing is registered (checked per call), so registering an SDK later,
  // and disabling it again, must take effect on the same tracer at once.
  it('traces once an SDK is registered and stops when it is disabled', async () => {
    const tracer = new OpenTelemetryMessageTracer(api, { system: 'rabbitmq' });
    const message = { id: 'm-1', exchange: 'x', routingKey: 'k', body: Buffer.from('{}'), headers: {}, contentType: 'application/json', timestamp: 0 };
    const before = {};
    tracer.send({ ...info, correlationId: 'c' }, before);
    expect(before).toEqual({});
    const tracing = installTracing();
    try {
      const headers: Record<string, string> = {};
      tracer.send({ ...info, correlationId: 'c' }, headers);
      expect(headers[TraceHeaders.traceparent]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      const wire: unknown[] = [];
      await tracer.publish({ ...message, headers }, async (m) => void wire.push(m.headers));
      expect((wire[0] as Record<string, string>)[TraceHeaders.traceparent]).toMatch(/^00-/);
      expect(tracing.spans().map((s) => s.name)).toEqual(['send x', 'publish x']);
    } finally {
      await tracing.shutdown();
    }
    const after = {};
    tracer.send({ ...info, correlationId: 'c' }, after);
    expect(after).toEqual({});
    const sent: unknown[] = [];
    await tracer.publish(message, async (m) => void sent.push(m.headers));
    expect(sent).toEqual([{}]);
  });
});

describe('stampOutgoing (the correlation id)', () => {
  const store = new AsyncLocalContextStore();
  it("keeps the sender's header, else inherits the current one, else is the message's own id", () => {
    const given = { [TraceHeaders.correlationId]: 'given' };
    stampOutgoing(noopMessageTracer, store, given, info);
    expect(given[TraceHeaders.correlationId]).toBe('given');
    const root: Record<string, string> = {};
    stampOutgoing(noopMessageTracer, store, root, info);
    expect(root).toEqual({ [TraceHeaders.correlationId]: 'm-1' });
    const inherited: Record<string, string> = {};
    store.run(newContext(), () => {
      setCorrelationId(store, 'from-the-handled-message');
      stampOutgoing(noopMessageTracer, store, inherited, info);
    });
    expect(inherited[TraceHeaders.correlationId]).toBe('from-the-handled-message');
  });
});

describe('the tracing option', () => {
  const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
  it("defaults to off (opt-in: true or 'auto') and refuses anything but a boolean or 'auto'", () => {
    expect(resolveTmmOptions({ dataSource }).tracing).toBe(false);
    expect(resolveTmmOptions({ dataSource, tracing: false }).tracing).toBe(false);
    expect(() => resolveTmmOptions({ dataSource, tracing: 'yes' as never })).toThrow(/tracing/);
  });
});
