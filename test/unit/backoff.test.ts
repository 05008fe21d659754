import { backoffDelay, topicMatches } from '../../src/internal';

describe('backoffDelay', () => {
  const o = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5 };
  it('grows exponentially and is capped', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, o, () => 1))).toEqual([100, 200, 400, 800, 1000]);
  });
  it('randomizes the jitter share only', () => {
    expect(backoffDelay(3, o, () => 0)).toBe(200);
    expect(backoffDelay(3, { ...o, jitter: 0 }, () => 0)).toBe(400);
  });
});

describe('topicMatches (AMQP topic rules)', () => {
  it.each([
    ['order.*', 'order.paid', true],
    ['order.*', 'order.paid.eu', false],
    ['order.#', 'order.paid.eu', true],
    ['order.#', 'order', true],
    ['#', 'anything.at.all', true],
    ['*.paid', 'order.paid', true],
    ['order.paid', 'order.paid', true],
    ['order.paid', 'order.refunded', false],
    ['#.eu', 'order.paid.eu', true],
  ])('%s matches %s: %s', (pattern, key, expected) => {
    expect(topicMatches(pattern, key)).toBe(expected);
  });
});
