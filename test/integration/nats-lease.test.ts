/**
 * NatsLease (single active consumer on JetStream 2.9) on the shared nats-server: a lease runs out by the
 * candidate's own elapsed time since the holder's entry last changed, never by comparing the holder's clock
 * with the candidate's. Wall-clock skew is injected through the lease's clock; the stream is read with a raw
 * JetStream client to see who wrote the lease.
 */
import { randomUUID } from 'node:crypto';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { NatsLease } from '../../src/transport/nats/NatsLease';
import { ensureStream } from '../../src/transport/nats/NatsRouteTable';
import { NATS_URL } from '../support/consumers';
import { sleep } from '../support/broker';

jest.setTimeout(30_000);

const LEASE_MS = 900;
const id = randomUUID().slice(0, 8);
const STREAM = `TMMTEST_LEASES_${id}`;
const SUBJECT = `tmmtest.${id}.leases.q`;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStream(jsm, { name: STREAM, subjects: [`tmmtest.${id}.leases.>`], description: 'nats-lease test' });
});
afterAll(async () => {
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
});
afterEach(async () => {
  await jsm.streams.purge(STREAM);
});

/** The holder written in the lease entry now, read with a raw JetStream client. */
async function writtenHolder(): Promise<string | null> {
  const m = await jsm.streams.getMessage(STREAM, { last_by_subj: SUBJECT });
  if (!m) throw new Error(`no lease entry on ${SUBJECT}`);
  return (JSON.parse(new TextDecoder().decode(m.data)) as { holder: string | null }).holder;
}

/** Calls acquireOrRenew() every `everyMs` until stopped; counts the times it was granted. */
function keepTrying(lease: NatsLease, everyMs: number): { stop: () => Promise<void>; granted: () => number } {
  let granted = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      if (await lease.acquireOrRenew()) granted++;
      await sleep(everyMs);
    }
  })();
  return {
    granted: () => granted,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

it('a candidate whose clock runs ahead does not take the lease from a live holder', async () => {
  const holder = new NatsLease(js, jsm, STREAM, SUBJECT, LEASE_MS);
  // Ahead by two leases: the holder's `until` is always in this candidate's past.
  const skewed = new NatsLease(js, jsm, STREAM, SUBJECT, LEASE_MS, () => Date.now() + 2 * LEASE_MS);
  expect(await holder.acquireOrRenew()).toBe(true);
  const renewing = keepTrying(holder, LEASE_MS / 3);
  const candidate = keepTrying(skewed, 100);
  await sleep(4 * LEASE_MS);
  await candidate.stop();
  await renewing.stop();
  expect(candidate.granted()).toBe(0);
  expect(await writtenHolder()).toBe(holder.holder);
  expect(skewed.takeover).toBeUndefined();
});

it("a candidate whose clock runs behind takes over a dead holder's lease after one lease of its own time", async () => {
  const holder = new NatsLease(js, jsm, STREAM, SUBJECT, LEASE_MS);
  // Behind by ten leases: by the holder's `until` it would wait ten leases.
  const late = new NatsLease(js, jsm, STREAM, SUBJECT, LEASE_MS, () => Date.now() - 10 * LEASE_MS);
  expect(await holder.acquireOrRenew()).toBe(true);
  const diedAt = performance.now(); // the holder never renews again
  let tookAt: number | undefined;
  while (tookAt === undefined && performance.now() - diedAt < 5 * LEASE_MS) {
    if (await late.acquireOrRenew()) tookAt = performance.now();
    else await sleep(50);
  }
  expect(tookAt).toBeDefined();
  // Not before a lease had passed since the entry last changed, and not much later.
  expect(tookAt! - diedAt).toBeGreaterThanOrEqual(LEASE_MS);
  expect(tookAt! - diedAt).toBeLessThan(LEASE_MS + 1_000);
  expect(await writtenHolder()).toBe(late.holder);
  // Taken over, not released: the new holder learns it must wait for what the dead one had in hand.
  expect(late.takeover).toBeDefined();
});

it('a released lease is taken at once, with no takeover wait', async () => {
  const first = new NatsLease(js, jsm, STREAM, SUBJECT, LEASE_MS);
  const second = new NatsLease(js, jsm, STREAM, SUBJECT, LEASE_MS);
  expect(await first.acquireOrRenew()).toBe(true);
  expect(await second.acquireOrRenew()).toBe(false);
  await first.release();
  expect(await second.acquireOrRenew()).toBe(true);
  expect(second.takeover).toBeUndefined();
  expect(await writtenHolder()).toBe(second.holder);
  // The first one, asking again, sees a live holder.
  expect(await first.acquireOrRenew()).toBe(false);
});
