import { ConfigurationError, MemoryTransport, errorFingerprint, normalizeErrorMessage, toDeadLetter } from '../../src/internal';
import { MeteredTransport, ThroughputSampler, resolveAdminOptions } from 'tmm/admin';
import { hostHeaderName } from '../../src/admin/AdminOptions';

describe('error fingerprints', () => {
  it('normalize ids, numbers, times and quoted values, so occurrences of one problem group together', () => {
    expect(normalizeErrorMessage('order 1042 not found at 2026-11-22T03:00:01.123Z (id 01a2016b-be12-78a6-adf9-6e0eb00f2553, key "abc")')).toBe(
      'order <n> not found at <time> (id <uuid>, key <str>)',
    );
    expect(errorFingerprint('A.h', 'Error', 'order 1 not found')).toBe(errorFingerprint('A.h', 'Error', 'order 99 not found'));
  });

  it('differ by consumer and by error code', () => {
    const base = errorFingerprint('A.h', 'Error', 'boom');
    expect(errorFingerprint('B.h', 'Error', 'boom')).not.toBe(base);
    expect(errorFingerprint('A.h', 'TMM_MESSAGE_INVALID', 'boom')).not.toBe(base);
    expect(base).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('admin options', () => {
  it('apply safe defaults: loopback address, collector and metrics on', () => {
    const o = resolveAdminOptions({ auth: { tokens: { ops: 'a'.repeat(16) } } });
    expect(o).toMatchObject({ host: '127.0.0.1', port: 8089, readOnly: false, collector: { enabled: true }, metrics: { enabled: true } });
  });

  it('name the offending path of a wrong option', () => {
    expect(() => resolveAdminOptions({ auth: { users: { alice: 'short' } } })).toThrow(/"admin.auth.users.alice": must be at least 12 characters/);
    expect(() => resolveAdminOptions({ port: 70000, auth: { tokens: { ops: 'a'.repeat(16) } } })).toThrow(ConfigurationError);
    expect(() => resolveAdminOptions({ auth: { tokens: { 'bad name!': 'a'.repeat(16) } } })).toThrow(/admin.auth.tokens/);
  });

  it('allow the loopback names and the listening host by default; need allowedHosts on a wildcard address', () => {
    const auth = { tokens: { ops: 'a'.repeat(16) } };
    expect(resolveAdminOptions({ auth }).allowedHosts).toEqual(['localhost', '127.0.0.1', '::1']);
    expect(resolveAdminOptions({ auth, host: '10.1.2.3' }).allowedHosts).toEqual(['localhost', '127.0.0.1', '::1', '10.1.2.3']);
    expect(() => resolveAdminOptions({ auth, host: '0.0.0.0' })).toThrow(/"admin.allowedHosts": required when listening on "0.0.0.0"/);
    expect(() => resolveAdminOptions({ auth, host: '::' })).toThrow(/admin.allowedHosts/);
    expect(resolveAdminOptions({ auth, host: '0.0.0.0', allowedHosts: ['Admin.Example.COM', '[fd00::1]'] }).allowedHosts).toEqual(['admin.example.com', 'fd00::1']);
    expect(resolveAdminOptions({ auth, host: '0.0.0.0', allowedHosts: '*' }).allowedHosts).toBe('*');
    expect(() => resolveAdminOptions({ auth, allowedHosts: ['admin.example.com:8089'] })).toThrow(/"admin.allowedHosts.0": a host name or address without port or path/);
    expect(() => resolveAdminOptions({ auth, allowedHosts: [] })).toThrow(/admin.allowedHosts/);
  });

  it('read the host name out of a Host header, or nothing when it is malformed', () => {
    expect(hostHeaderName('LocalHost:8089')).toBe('localhost');
    expect(hostHeaderName('127.0.0.1')).toBe('127.0.0.1');
    expect(hostHeaderName('[::1]:8089')).toBe('::1');
    for (const bad of [undefined, '', 'a b', 'evil.example/x', 'user@host', 'host:port', '[::1', 'host:123456']) expect(hostHeaderName(bad)).toBeUndefined();
  });
});

describe('toDeadLetter', () => {
  it('reads the broker’s x-death header when the consumer side wrote none', () => {
    const letter = toDeadLetter(
      {
        message: { id: '', exchange: '', routingKey: 'q.dlq', body: Buffer.from('{"a":1}'), headers: { 'x-death': JSON.stringify([{ queue: 'q', reason: 'rejected', exchange: 'ex', 'routing-keys': ['rk.1'], count: 1 }]) }, contentType: 'application/json', timestamp: 0 },
        queue: 'q.dlq',
        redelivered: false,
        ack: async () => undefined,
        nack: async () => undefined,
      },
      { queue: { name: 'q.dlq' } },
      1000,
    );
    expect(letter).toMatchObject({ queue: 'q', reason: 'rejected', originalExchange: 'ex', originalRoutingKey: 'rk.1', topic: 'rk.1', errorCode: 'broker:rejected', attempts: 1, messageCreatedAt: null });
    // No message id: a content hash keeps collecting idempotent.
    expect(letter.messageId).toMatch(/^sha256:[0-9a-f]{48}$/);
  });
});

describe('MeteredTransport', () => {
  it('counts publishes by result and times deliveries per queue until their ack or nack', async () => {
    const metered = new MeteredTransport(new MemoryTransport());
    await metered.declare({ queues: [{ name: 'q' }] });
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    await metered.subscribe({ queue: { name: 'q' }, prefetch: 1 }, async (d) => {
      await d.ack();
      settle();
    });
    await metered.publish({ id: '1', exchange: '', routingKey: 'q', body: Buffer.from('{}'), headers: {}, contentType: 'application/json', timestamp: 0 });
    await expect(metered.publish({ id: '2', exchange: '', routingKey: 'nowhere', body: Buffer.from('{}'), headers: {}, contentType: 'application/json', timestamp: 0 })).rejects.toThrow();
    await done;
    const text = await metered.registry.metrics();
    expect(text).toContain('tmm_transport_publishes_total{result="confirmed",code=""} 1');
    expect(text).toContain('tmm_transport_publishes_total{result="failed",code="TMM_PUBLISH_UNROUTABLE"} 1');
    expect(text).toContain('tmm_consume_seconds_count{queue="q",outcome="ack"} 1');
    await metered.close();
  });
});

describe('ThroughputSampler', () => {
  it('keeps per-interval deltas of cumulative counters', () => {
    const c = { published: 0, publishFailed: 0, consumed: 0, retried: 0, deadLettered: 0, collected: 0 };
    const s = new ThroughputSampler(() => ({ ...c }), 1000, 2);
    s.start();
    s.stop();
    c.published = 5;
    s.sample(10_000);
    c.published = 7;
    c.consumed = 3;
    s.sample(11_000);
    c.published = 8;
    s.sample(12_000);
    expect(s.series().map((p) => [p.at, p.published, p.consumed])).toEqual([
      [11_000, 2, 3],
      [12_000, 1, 0],
    ]);
    expect(s.recent(1000, 12_000).published).toBe(1); // only the sample that ended within the last second
    expect(s.recent(1500, 12_000).published).toBe(3);
  });
});
