/**
 * The ceiling: a bare node:http server answering the same 302s from a Map. Codes come
 * as JSON on stdin; prints its port on stdout once listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let input = '';
process.stdin.on('data', (chunk: Buffer) => (input += chunk.toString('utf8')));
process.stdin.on('end', () => {
  const targets = new Map<string, string>(JSON.parse(input) as [string, string][]);
  const server = createServer((request, response) => {
    const location = targets.get((request.url ?? '/').slice(1));
    if (location === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(302, { Location: location, 'Cache-Control': 'private, no-store' }).end();
  });
  server.keepAliveTimeout = 72_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
});
