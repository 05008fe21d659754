import { NonRetryableError } from '../../errors';
import type { IdempotencyKey } from '../../metadata';
import type { Stage } from '../ConsumerPipeline';
import type { DeliveryState } from '../DeliveryState';
import type { InboxStore } from '../InboxStore';

const MAX_KEY = 255;

/**
 * The idempotency claim: INSERT (consumer queue, key) in the handler's transaction before the handler
 * runs. The key is the message id; for a message without one, the header or payload field that
 * @Idempotent({ key }) names. Already there ⇒ the message was processed: skip the rest (the delivery is
 * acked). Neither ⇒ NonRetryableError TMM_MESSAGE_ID_MISSING (dead-lettered as `missing-message-id`).
 */
export function inboxStage(inbox: InboxStore): Stage {
  return async (state, next) => {
    const key = state.messageId || keyOf(state);
    if (!(await inbox.claim(state.scope!.manager, state.def.queue, key))) {
      state.outcome = 'duplicate';
      return;
    }
    await next();
  };
}

/** The dedup key of a message without a message id, or the missing-message-id error naming where it looked. */
function keyOf(state: DeliveryState): string {
  const spec: IdempotencyKey | undefined = state.def.idempotencyKey;
  if (!spec) {
    throw new NonRetryableError(`${state.def.name} is idempotent and the message has no message id to deduplicate by (name a header or payload field with @Idempotent({ key }))`, {
      code: 'TMM_MESSAGE_ID_MISSING',
    });
  }
  let value: unknown;
  let where: string;
  if ('header' in spec) {
    where = `header "${spec.header}"`;
    value = state.delivery.message.headers[spec.header];
  } else {
    where = `payload field "${spec.path}"`;
    // The raw JSON (decoded already, so it parses): contract classes may rename or drop fields.
    value = JSON.parse(state.delivery.message.body.toString('utf8')) as unknown;
    for (const part of spec.path.split('.')) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
  }
  const key = typeof value === 'number' && Number.isFinite(value) ? String(value) : typeof value === 'string' ? value : undefined;
  if (!key || key.length > MAX_KEY) {
    const got = value === undefined ? 'it is absent' : `it is ${key && key.length > MAX_KEY ? `${key.length} characters long (at most ${MAX_KEY})` : `not a non-empty string or number (${JSON.stringify(value)})`}`;
    throw new NonRetryableError(`${state.def.name} is idempotent, the message has no message id and its ${where} cannot be the key: ${got}`, { code: 'TMM_MESSAGE_ID_MISSING' });
  }
  return key;
}
