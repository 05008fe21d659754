/** Helpers to read the errors amqplib raises when the broker closes a channel or connection. */

/** The AMQP reply code of a server close (404 NOT_FOUND, 406 PRECONDITION_FAILED, 320 CONNECTION_FORCED...). */
export function replyCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `NOT_FOUND - no exchange 'orders' in vhost '/'` → `orders`. */
export function missingExchange(err: unknown): string | undefined {
  return /no exchange '(.*)' in vhost/.exec(errorText(err))?.[1];
}

/** amqplib throws IllegalOperationError synchronously when a channel or connection is already closed. */
export function isClosedChannelError(err: unknown): boolean {
  return err instanceof Error && err.name === 'IllegalOperationError';
}
