// The scenario every package-test app runs, whatever its wiring: commit one payment (its message must be
// consumed), roll back another (its message must never be published), then report as one JSON line.
import type { DataSource } from 'typeorm';
import type { Tmm } from 'tmm';
import { TmmError } from 'tmm';
import { EXCHANGE, Payment, QUEUE, Ticket } from './model';

export interface Payments {
  pay(orderId: string, amountCents: number, fail?: boolean): Promise<void>;
}

export async function runScenario(tmm: Tmm, dataSource: DataSource, payments: Payments, rawCleanup: () => Promise<void>): Promise<void> {
  const result: Record<string, unknown> = { queue: QUEUE, exchange: EXCHANGE };
  try {
    await tmm.start();
    await payments.pay('committed-1', 1250);
    let rolledBack = false;
    try {
      await payments.pay('rolled-back-1', 990, true);
    } catch (e) {
      rolledBack = (e as Error).message.includes('declined');
    }
    result.rolledBackThrew = rolledBack;
    // Ground truth from the app's own tables, read through its own TypeORM (not through tmm).
    const tickets = async () => (await dataSource.getRepository(Ticket).find()).map((r) => r.orderId);
    const until = Date.now() + 20_000;
    while (!(await tickets()).includes('committed-1') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    // Give a wrongly published rolled-back message the time to arrive as well.
    await new Promise((r) => setTimeout(r, 1000));
    result.tickets = (await tickets()).sort();
    result.payments = (await dataSource.getRepository(Payment).find()).map((r) => r.orderId).sort();
    const health = await tmm.health();
    result.healthOk = health.ok;
    result.brandedErrors = TmmError.is(new Error('x')) === false;
  } catch (e) {
    result.error = String((e as Error).stack ?? e);
  } finally {
    await tmm.stop().catch((e: unknown) => (result.stopError = String(e)));
    if (dataSource.isInitialized) await dataSource.destroy();
    await rawCleanup().catch((e: unknown) => (result.cleanupError = String(e)));
  }
  console.log(JSON.stringify(result));
}

/** Deletes this run's queue and exchange with the app's own amqplib (cleanup outside tmm). */
export async function deleteTopology(url: string): Promise<void> {
  const amqp = require('amqplib');
  const c = await amqp.connect(url);
  const ch = await c.createChannel();
  for (const q of [QUEUE, `${QUEUE}.dlq`, `${QUEUE}.retry.200ms`]) await ch.deleteQueue(q);
  await ch.deleteExchange(EXCHANGE);
  await c.close();
}
