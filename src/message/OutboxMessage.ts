import type { Headers } from '../transport/Transport';
import { WireHeaders } from './WireHeaders';

/** Status values land in database rows and logs: they are stable strings. */
export const OutboxStatus = {
  Pending: 'PENDING',
  Delivered: 'DELIVERED',
  Dead: 'DEAD',
  /** In doubt: the producer could not tell whether it was published (kept for the admin to decide). */
  Exception: 'EXCEPTION',
} as const;
export type OutboxStatus = (typeof OutboxStatus)[keyof typeof OutboxStatus];

/** A message as it is stored in `tmm_outbox` and handed to the relay. Times are epoch milliseconds. */
export interface OutboxMessage {
  /** UUIDv7: time-ordered, so the primary key index stays append-mostly and ids sort by creation. */
  id: string;
  topic: string;
  exchange: string;
  routingKey: string;
  /** Serialized payload (JSON text for contracts). */
  payload: string;
  headers: Headers;
  /** Not published before this time (delayed messages). */
  availableAt: number;
  /** Messages with the same key are published one at a time, in id order. */
  orderingKey: string | null;
  createdAt: number;
}

/** The headers tmm sets on every message it produces. */
export const TmmHeaders = {
  contractVersion: 'tmm-contract-version',
  topic: 'tmm-topic',
  orderingKey: 'tmm-ordering-key',
  /** The relay's publish attempt (`tmm-publish-attempt`; `tmm-attempt` before 0.2). */
  attempt: WireHeaders.publishAttempt,
  /**
   * On an outbox row only, never on the wire: 'base64' when `payload` holds the exact body bytes in base64
   * (a dead letter's body that was not valid UTF-8 text, resent byte-exact).
   */
  payloadEncoding: 'tmm-payload-encoding',
} as const;
