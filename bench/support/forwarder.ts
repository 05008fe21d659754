/**
 * A delaying TCP forwarder, run as its own process by netDelay.ts: `node forwarder.js <listenPort> <targetHost>
 * <targetPort> <oneWayMs>`. Every chunk read from either side is written to the other no earlier than
 * oneWayMs after it arrived, in order (a FIFO per direction, one timer for its head). Node's timers have 1 ms
 * resolution, so a chunk waits between oneWayMs and about oneWayMs + 1 ms; netDelay.ts measures the round trip
 * that results. Its CPU is outside the measured process and the same for every side of a run. Prints
 * "ready <port>" once listening.
 */
import { Socket, connect, createServer } from 'node:net';

const [listenPort, targetHost, targetPort, oneWayMs] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4]), Number(process.argv[5])];

function delayed(from: Socket, to: Socket): void {
  const queue: { due: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0].due <= now) to.write(queue.shift()!.chunk);
    if (queue.length > 0) timer = setTimeout(drain, Math.max(1, queue[0].due - now));
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ due: performance.now() + oneWayMs, chunk });
    timer ??= setTimeout(drain, oneWayMs);
  });
}

const server = createServer((client) => {
  client.setNoDelay(true);
  const upstream = connect(targetPort, targetHost);
  upstream.setNoDelay(true);
  delayed(client, upstream);
  delayed(upstream, client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`ready ${listenPort}\n`));
process.on('SIGTERM', () => process.exit(0));
