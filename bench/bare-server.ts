/**
 * The ceiling: a bare node:http server answering the same 302s from a Map. Codes come
 * as JSON on stdin; prints its port on stdout once listening. An argument > 1 runs that
 * many processes on one port with node:cluster, like Shunt's WORKERS.
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';

const workers = Number(process.argv[2] ?? 1);

function serve(targets: Map<string, string>, port: number, onListening: (port: number) => void): void {
  const server = createServer((request, response) => {
    const location = targets.get((request.url ?? '/').slice(1));
    if (location === undefined) {
      response.writeHead(404).end();
      return;
    }
    // The same framing as Shunt's answer: without a length Node would send the empty body
    // chunked, which costs the client a chunk parse per answer and made this "ceiling" slower
    // than Shunt itself once Shunt's own costs were gone.
    response.writeHead(302, { Location: location, 'Cache-Control': 'private, no-store', 'Content-Length': '0' }).end();
  });
  server.keepAliveTimeout = 72_000;
  server.listen(port, '127.0.0.1', () => onListening((server.address() as AddressInfo).port));
}

if (cluster.isPrimary) {
  let input = '';
  process.stdin.on('data', (chunk: Buffer) => (input += chunk.toString('utf8')));
  process.stdin.on('end', () => {
    if (workers <= 1) {
      serve(new Map(JSON.parse(input) as [string, string][]), 0, (port) => process.stdout.write(`${port}\n`));
      return;
    }
    // Workers share one port: find a free one, then hand it to each.
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const port = (probe.address() as AddressInfo).port;
      probe.close(() => {
        let listening = 0;
        for (let i = 0; i < workers; i += 1) {
          const worker = cluster.fork({ BARE_PORT: String(port) });
          // The worker asks for the codes once it can hear the answer, then says it listens.
          worker.on('message', (message: string) => {
            if (message === 'ready') worker.send(input);
            else if (++listening === workers) process.stdout.write(`${port}\n`);
          });
        }
      });
    });
  });
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  });
} else {
  process.once('message', (input: string) => {
    serve(new Map(JSON.parse(input) as [string, string][]), Number(process.env.BARE_PORT), () => process.send?.('listening'));
  });
  process.send?.('ready');
}
