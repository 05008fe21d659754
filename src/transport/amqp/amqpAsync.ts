import type * as amqp from 'amqplib';
import { PublishError } from '../../errors';
import type { TransportMessage } from '../Transport';

/** Small promise and URL helpers of AmqpTransport: deadlines on broker waits, quiet closes. */

export function closedPublish(m: TransportMessage): PublishError {
  return new PublishError('TMM_PUBLISH_CLOSED', `message ${m.id} was not published: the transport was closed`);
}

export function closeQuietly(channel: amqp.Channel): void {
  channel.close().catch(() => undefined);
}

/** Adds `heartbeat` to the URL unless the URL sets it. */
export function withHeartbeat(url: string, heartbeat: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(heartbeat));
  return u.toString();
}

/**
 * `p`, or a rejection with onTimeout() once `deadline` (epoch ms) passes first. `p` keeps running; its
 * later rejection is swallowed.
 */
export function withDeadline<T>(p: Promise<T>, deadline: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(0, deadline - Date.now()));
  });
  p.catch(() => undefined);
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** True when `p` settled within ms. */
export async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}
