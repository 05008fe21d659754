import { randomBytes } from 'node:crypto';
import { MessageProducer, Tmm } from 'tmm';
import { TmmAdmin } from 'tmm/admin';
import { InvoiceHandler } from './InvoiceHandler';
import { InvoiceRequested } from './InvoiceRequested';

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; ) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

/**
 * The operator's loop, on the running demo: a message fails → is dead-lettered → stored by the collector
 * → shown in the admin console → the cause is fixed → it is resent (through the outbox) → consumed.
 * With `serve`, it stops after the fix and leaves the resend to you in the console, until Ctrl-C.
 * Resolves true when the loop completed.
 */
export async function adminDemo(tmm: Tmm, producer: MessageProducer, invoicing: InvoiceHandler, options: { serve: boolean; port: number }): Promise<boolean> {
  const token = randomBytes(18).toString('base64url'); // a fresh credential per run; there is no default password
  const admin = new TmmAdmin(tmm, { port: options.port, auth: { tokens: { demo: token } }, metrics: { sampleIntervalMs: 1000 } });
  const url = await admin.start();
  console.log('\nadmin: dead letters and the console');
  console.log(`  console: ${url}   token: ${token}`);
  console.log(`  (API: curl -H "Authorization: Bearer ${token}" ${url}/api/overview)`);

  await producer.send(InvoiceRequested.of('order-1005', 'c-77')); // customer c-77 has no billing address yet
  const stored = await waitFor(async () => (await admin.deadLetters.summarize()).byStatus.NEW > 0, 5000);
  const [letter] = (await admin.deadLetters.list({ status: ['NEW'] }, { limit: 1, offset: 0 })).items;
  if (!stored || !letter) {
    console.log('  MISMATCH: the failing message did not reach the dead-letter store');
    await admin.stop();
    return false;
  }
  console.log(`  invoicing failed ${letter.attempts}× for order-1005 → dead letter ${letter.id}`);
  console.log(`    error: ${letter.errorMessage}`);

  invoicing.addBillingAddress('c-77', 'Kurfürstendamm 21, Berlin');
  console.log('  fix: billing address of customer c-77 added');

  if (options.serve) {
    console.log(`\n  Open ${url}, sign in with the token above, open "Dead letters", click the one for order-1005 and press Resend.`);
    console.log('  The invoice is issued as soon as it is consumed (watch this terminal). Ctrl-C stops the demo.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    console.log('\n  stopping…');
    const after = await admin.deadLetters.get(letter.id);
    await admin.stop();
    return after?.status !== 'RESENT' || invoicing.invoices.includes('order-1005');
  }

  // What the console's Resend button does, through the HTTP API: session (CSRF token), then the action.
  const auth = { authorization: `Bearer ${token}` };
  const session = (await (await fetch(`${url}/api/session`, { headers: auth })).json()) as { csrfToken: string };
  const res = await fetch(`${url}/api/dead-letters/${letter.id}/resend`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
    body: JSON.stringify({ comment: 'billing address added' }),
  });
  const resent = (await res.json()) as { messageId?: string };
  console.log(`  resent through the outbox as message ${resent.messageId} (HTTP ${res.status})`);
  const consumed = await waitFor(() => invoicing.invoices.includes('order-1005'), 5000);
  const after = await admin.deadLetters.get(letter.id);
  console.log(`  dead letter is now ${after?.status}; invoice issued: ${consumed ? 'yes' : 'NO'}`);
  // The recorded journey (journey.enabled in main.ts), as the console's timeline shows it.
  let journey: { step: string }[] = [];
  await waitFor(async () => {
    await tmm.journey?.flush();
    journey = ((await (await fetch(`${url}/api/dead-letters/${letter.id}`, { headers: auth })).json()) as { journey: { step: string }[] }).journey;
    return journey.some((j) => j.step === 'copy delivered');
  }, 3000);
  console.log(`  journey: ${journey.map((j) => j.step).join(' → ')}`);
  console.log('  (run `npm run demo -- --serve` to do the resend yourself in the console)');
  await admin.stop();
  return consumed && after?.status === 'RESENT';
}
