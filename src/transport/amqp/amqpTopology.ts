import type * as amqp from 'amqplib';
import { TopologyError } from '../../errors';
import type { ExchangeSpec, QueueSpec, Topology } from '../Transport';
import { errorText, replyCode } from './amqpErrors';

/** One declaration (an exchange, a queue or a binding), named for the error it raises. */
export interface DeclareStep {
  readonly what: string;
  run(channel: amqp.Channel): Promise<unknown>;
}

/** The queue arguments a QueueSpec maps to; what RabbitMQ compares on a redeclare. */
export function queueArguments(spec: QueueSpec): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  // Only quorum is spelled out: a classic queue declared with no x-queue-type must stay equivalent.
  if (spec.type === 'quorum') args['x-queue-type'] = 'quorum';
  if (spec.deadLetterExchange !== undefined) args['x-dead-letter-exchange'] = spec.deadLetterExchange;
  if (spec.deadLetterRoutingKey !== undefined) args['x-dead-letter-routing-key'] = spec.deadLetterRoutingKey;
  if (spec.messageTtl !== undefined) args['x-message-ttl'] = spec.messageTtl;
  if (spec.singleActiveConsumer) args['x-single-active-consumer'] = true;
  if (spec.type === 'quorum' && spec.deadLetterExchange !== undefined) {
    // At-least-once dead-lettering (RabbitMQ ≥ 3.10): the message leaves this queue only once the target
    // queue confirmed it; a missing or full target keeps it here (retried) instead of dropping it. It
    // needs reject-publish overflow (with drop-head RabbitMQ falls back to at-most-once).
    args['x-dead-letter-strategy'] = 'at-least-once';
    args['x-overflow'] = 'reject-publish';
  }
  return args;
}

/** Rejects specs RabbitMQ would misread (an empty name makes a server-named queue) before anything is sent. */
export function validateTopology(topology: Topology): void {
  for (const ex of topology.exchanges ?? []) {
    if (!ex.name) throw new TopologyError('exchange name must not be empty (the default exchange cannot be declared)');
    if (ex.type !== undefined && !['topic', 'direct', 'fanout'].includes(ex.type)) {
      throw new TopologyError(`exchange "${ex.name}": type must be topic, direct or fanout, got ${String(ex.type)}`);
    }
  }
  for (const q of topology.queues ?? []) {
    if (!q.name) throw new TopologyError('queue name must not be empty');
    if (q.type !== undefined && q.type !== 'classic' && q.type !== 'quorum') {
      throw new TopologyError(`queue "${q.name}": type must be classic or quorum, got ${String(q.type)}`);
    }
    if (q.messageTtl !== undefined && (!Number.isInteger(q.messageTtl) || q.messageTtl < 0)) {
      throw new TopologyError(`queue "${q.name}": messageTtl must be an integer ≥ 0, got ${q.messageTtl}`);
    }
    for (const b of q.bindings ?? []) {
      if (!b.exchange) throw new TopologyError(`queue "${q.name}": cannot bind to the default exchange`);
    }
  }
}

/** Exchanges first, then each queue followed by its bindings. */
export function declareSteps(topology: Topology): DeclareStep[] {
  const steps: DeclareStep[] = [];
  for (const ex of topology.exchanges ?? []) steps.push(exchangeStep(ex));
  for (const q of topology.queues ?? []) {
    steps.push({
      what: `queue "${q.name}"`,
      run: (ch) => ch.assertQueue(q.name, { durable: true, exclusive: false, autoDelete: false, arguments: queueArguments(q) }),
    });
    for (const b of q.bindings ?? []) {
      steps.push({
        what: `binding of queue "${q.name}" to exchange "${b.exchange}" with "${b.routingKey}"`,
        run: (ch) => ch.bindQueue(q.name, b.exchange, b.routingKey),
      });
    }
  }
  return steps;
}

function exchangeStep(ex: ExchangeSpec): DeclareStep {
  return {
    what: `exchange "${ex.name}"`,
    run: (ch) => ch.assertExchange(ex.name, ex.type ?? 'topic', { durable: true, autoDelete: false, internal: false }),
  };
}

/** Maps a failed declaration to a TopologyError that names the exchange, queue or binding. */
export function topologyError(step: DeclareStep, err: unknown): TopologyError {
  const code = replyCode(err);
  let why: string;
  if (code === 406) why = 'it already exists with different arguments';
  else if (code === 404) why = 'something it refers to does not exist';
  else if (code === 403) why = 'access refused';
  else why = 'the declaration did not complete';
  return new TopologyError(`${step.what} could not be declared: ${why} (${errorText(err)})`, { cause: err });
}

/** Merges bindings of a re-declared queue into the recorded spec, so a reconnect restores all of them. */
export function mergeQueueSpec(existing: QueueSpec | undefined, spec: QueueSpec): QueueSpec {
  const bindings = [...(existing?.bindings ?? [])];
  for (const b of spec.bindings ?? []) {
    if (!bindings.some((x) => x.exchange === b.exchange && x.routingKey === b.routingKey)) bindings.push(b);
  }
  return { ...spec, bindings };
}
