/** A tmm queue as the broker sees it now. */
export interface QueueDepth {
  queue: string;
  /** Messages in the queue: ready plus (where the source tells) unacknowledged. */
  messages: number;
  /** Ready for delivery (AMQP passive declare: its message count, which leaves out the unacknowledged). */
  ready: number;
  /** Delivered and not yet acknowledged; null when the source does not tell (AMQP passive declares). */
  unacked: number | null;
  consumers: number;
  /** Where the numbers come from. */
  source: 'amqp' | 'management';
  /** Why the queue could not be read (it does not exist, the broker did not answer); the numbers are 0 then. */
  error?: string;
}

/**
 * Reads the depth of queues from the broker, for the admin's queue panel and `tmm_queue_*` gauges.
 *
 * Contract: inspect() answers one QueueDepth per name, in the order given; a queue that cannot be read
 * comes back with `error` set (never a throw for one queue); it reads, never changes, a queue.
 */
export interface QueueInspector {
  readonly source: 'amqp' | 'management';
  inspect(queues: readonly string[]): Promise<QueueDepth[]>;
}

const failed = (queue: string, source: QueueDepth['source'], error: string): QueueDepth => ({ queue, messages: 0, ready: 0, unacked: null, consumers: 0, source, error });

/** What a transport offers for a passive declare (AmqpTransport.inspectQueue). */
interface InspectableTransport {
  inspectQueue(name: string): Promise<{ messageCount: number; consumerCount: number }>;
}

/** The transport that does the inspecting: the given one, or the one a wrapper (MeteredTransport) wraps. */
export function inspectableTransport(transport: unknown): InspectableTransport | undefined {
  for (let t = transport as { inspectQueue?: unknown; inner?: unknown } | undefined, i = 0; t && i < 5; t = t.inner as typeof t, i++) {
    if (typeof t.inspectQueue === 'function') return t as unknown as InspectableTransport;
  }
  return undefined;
}

/**
 * Depths from AMQP passive declares (queue.declare passive: ready messages and consumers, one channel per
 * queue): works on any RabbitMQ, needs no plugin; cannot tell unacknowledged messages.
 */
export class AmqpQueueInspector implements QueueInspector {
  readonly source = 'amqp' as const;
  constructor(private readonly transport: InspectableTransport) {}

  async inspect(queues: readonly string[]): Promise<QueueDepth[]> {
    return Promise.all(
      queues.map(async (queue) => {
        try {
          const q = await this.transport.inspectQueue(queue);
          return { queue, messages: q.messageCount, ready: q.messageCount, unacked: null, consumers: q.consumerCount, source: this.source };
        } catch (e) {
          return failed(queue, this.source, (e as Error).message);
        }
      }),
    );
  }
}

export interface RabbitManagementOptions {
  /** The management API's base URL, e.g. `http://rabbitmq:15672`. */
  url: string;
  username: string;
  password: string;
  vhost: string;
  timeoutMs: number;
}

/**
 * Depths from the RabbitMQ management HTTP API (`GET /api/queues/{vhost}`, one request for all queues):
 * ready, unacknowledged and consumers. The plugin's numbers are refreshed by the broker every few seconds
 * (`collect_statistics_interval`, 5 s by default), so they lag the queue a little.
 */
export class RabbitManagementQueueInspector implements QueueInspector {
  readonly source = 'management' as const;
  private readonly authorization: string;

  constructor(private readonly options: RabbitManagementOptions) {
    this.authorization = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;
  }

  async inspect(queues: readonly string[]): Promise<QueueDepth[]> {
    const url = `${this.options.url.replace(/\/+$/, '')}/api/queues/${encodeURIComponent(this.options.vhost)}?columns=name,messages,messages_ready,messages_unacknowledged,consumers`;
    let rows: { name: string; messages?: number; messages_ready?: number; messages_unacknowledged?: number; consumers?: number }[];
    try {
      const res = await fetch(url, { headers: { authorization: this.authorization, accept: 'application/json' }, signal: AbortSignal.timeout(this.options.timeoutMs) });
      if (!res.ok) throw new Error(`the management API answered HTTP ${res.status}${res.status === 401 ? ' (wrong credentials, or the user lacks the monitoring tag)' : ''}`);
      rows = (await res.json()) as typeof rows;
    } catch (e) {
      const message = (e as Error).name === 'TimeoutError' ? `the management API did not answer within ${this.options.timeoutMs} ms` : (e as Error).message;
      return queues.map((q) => failed(q, this.source, message));
    }
    const byName = new Map(rows.map((r) => [r.name, r]));
    return queues.map((queue) => {
      const r = byName.get(queue);
      if (!r) return failed(queue, this.source, `no queue "${queue}" in vhost "${this.options.vhost}"`);
      const ready = r.messages_ready ?? 0;
      const unacked = r.messages_unacknowledged ?? 0;
      return { queue, messages: r.messages ?? ready + unacked, ready, unacked, consumers: r.consumers ?? 0, source: this.source };
    });
  }
}
