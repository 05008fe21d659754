import { NonRetryableError } from '../../errors';
import type { Stage } from '../ConsumerPipeline';
import type { InboxStore } from '../InboxStore';

/**
 * The idempotency claim: INSERT (consumer queue, message id) in the handler's transaction before the
 * handler runs. Already there ⇒ the message was processed: skip the rest (the delivery is acked).
 */
export function inboxStage(inbox: InboxStore): Stage {
  return async (state, next) => {
    if (!state.messageId) {
      throw new NonRetryableError(`${state.def.name} is idempotent and the message has no message id to deduplicate by`, { code: 'TMM_MESSAGE_ID_MISSING' });
    }
    if (!(await inbox.claim(state.scope!.manager, state.def.queue, state.messageId))) {
      state.outcome = 'duplicate';
      return;
    }
    await next();
  };
}
