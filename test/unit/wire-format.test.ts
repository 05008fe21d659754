/**
 * The pure parts of the wire format: the AMQP property mapping both ways, error fingerprints of foreign
 * ids, the app's fingerprint function (and its fallback), the quorum queue arguments.
 */
import type * as amqp from 'amqplib';
import { amqpPublishOptions, errorFingerprint, fromAmqpMessage, normalizeErrorMessage, queueArguments, toDeadLetter } from '../../src/internal';
import { wireMessage } from '../support/consumers';

describe('the AMQP property mapping', () => {
  it('sets type, app_id, correlation_id, timestamp seconds and the ms header; a copy keeps foreign properties', () => {
    const m = wireMessage({ id: 'id-1', timestamp: 1_700_000_000_123, headers: { 'tmm-topic': 'orders.placed' }, body: {} });
    const o = amqpPublishOptions(m, { appId: 'orders' });
    expect(o).toMatchObject({ messageId: 'id-1', type: 'orders.placed', appId: 'orders', correlationId: 'id-1', timestamp: 1_700_000_000, persistent: true, mandatory: true });
    expect(o.headers).toMatchObject({ 'tmm-timestamp-ms': 1_700_000_000_123 });
    const copy = amqpPublishOptions({ ...m, type: 'Foreign', appId: 'java-svc', correlationId: 'c-1' }, { appId: 'orders' });
    expect(copy).toMatchObject({ type: 'Foreign', appId: 'java-svc', correlationId: 'c-1' });
  });

  it('reads the ms header before the seconds property, and a CloudEvents id when there is no message_id', () => {
    const msg = {
      content: Buffer.from('{}'),
      fields: { exchange: 'x', routingKey: 'a.b' },
      properties: { headers: { 'tmm-timestamp-ms': 1_700_000_000_456, 'ce-id': 'ev-1' }, timestamp: 1_700_000_000, type: 'T', appId: 'py', correlationId: 'c' },
    } as unknown as amqp.Message;
    expect(fromAmqpMessage(msg)).toMatchObject({ id: 'ev-1', timestamp: 1_700_000_000_456, type: 'T', appId: 'py', correlationId: 'c' });
    const noMs = { ...msg, properties: { ...msg.properties, headers: {} } } as unknown as amqp.Message;
    expect(fromAmqpMessage(noMs)).toMatchObject({ id: '', timestamp: 1_700_000_000_000 });
  });
});

describe('error fingerprints', () => {
  it.each([
    ['ord-7d199d60', 'ord-0be2aa41'],
    ['V1StGXR8_Z5jdHi6B-myT', 'Uakgb_J5m9g-0JDMbcJqL'],
    ['01ARZ3NDEKTSV4RRFFQ69G5FAV', '01HZX8K2C4N1QJ7P5M3B6W9T0E'],
  ])('groups letters that differ only by a mixed letter/digit id (%s vs %s)', (a, b) => {
    expect(normalizeErrorMessage(`order ${a} failed to settle`)).toBe(normalizeErrorMessage(`order ${b} failed to settle`));
    expect(errorFingerprint('C.m', 'Error', `order ${a} failed`)).toBe(errorFingerprint('C.m', 'Error', `order ${b} failed`));
  });

  it('keeps words apart that are not ids', () => {
    expect(normalizeErrorMessage('payment declined')).not.toBe(normalizeErrorMessage('payment expired'));
    expect(normalizeErrorMessage('ECONNREFUSED connecting')).toBe('ECONNREFUSED connecting');
  });

  it("uses the app's fingerprint function, and tmm's when it throws or returns nothing usable", () => {
    const delivery = { message: wireMessage({ headers: { 'tmm-error-message': 'boom 1', 'tmm-consumer': 'C.m', 'tmm-topic': 't' }, body: {} }), queue: 'q.dlq', redelivered: false } as never;
    const source = { queue: { name: 'q.dlq' } };
    expect(toDeadLetter(delivery, source, 0, (i) => `app:${i.topic}`).fingerprint).toBe('app:t');
    const tmms = errorFingerprint('C.m', null, 'boom 1');
    expect(toDeadLetter(delivery, source, 0, () => { throw new Error('x'); }).fingerprint).toBe(tmms);
    expect(toDeadLetter(delivery, source, 0, () => '' as string).fingerprint).toBe(tmms);
  });
});

describe('quorum queue arguments', () => {
  it('dead-letter at-least-once with reject-publish overflow when the quorum queue dead-letters', () => {
    expect(queueArguments({ name: 'q', type: 'quorum', deadLetterExchange: '', deadLetterRoutingKey: 'q.dlq' })).toMatchObject({
      'x-queue-type': 'quorum',
      'x-dead-letter-strategy': 'at-least-once',
      'x-overflow': 'reject-publish',
    });
    expect(queueArguments({ name: 'q', type: 'quorum' })).toEqual({ 'x-queue-type': 'quorum' });
    expect(queueArguments({ name: 'q', deadLetterExchange: '' })['x-dead-letter-strategy']).toBeUndefined();
  });
});
