/**
 * A second ceiling for the redirect benchmark: nginx itself answering the same 302s from a
 * `map`, with no upstream. What Shunt behind nginx can never beat.
 *
 *   const ceiling = await startNginxCeiling(new Map([['abc1234', 'https://example.com/']]));
 *   // GET `${ceiling.url}/abc1234` -> 302 Location: https://example.com/
 *   await ceiling.stop();
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../test/helpers/process.js';
import { nginxDir, runNginx, tempPaths } from '../test/helpers/nginx.js';

const CODE = /^[A-Za-z0-9_-]{1,64}$/;
// nginx would read `$` as a variable and cannot escape it in a map value; the others end the string.
const UNSAFE_URL = /["\\$\s]/;

export interface NginxCeiling {
  url: string;
  stop: () => Promise<void>;
}

/** `targets`: short code -> destination URL. `workers`: nginx worker processes (1 matches one Shunt process). */
export async function startNginxCeiling(targets: ReadonlyMap<string, string>, options: { workers?: number } = {}): Promise<NginxCeiling> {
  // Map strings match case-insensitively and short codes are case-sensitive: codes that
  // differ only in case become exact regexes (checked after the hash, so only they pay).
  const byLowerCase = new Map<string, number>();
  for (const code of targets.keys()) byLowerCase.set(code.toLowerCase(), (byLowerCase.get(code.toLowerCase()) ?? 0) + 1);
  const entries: string[] = [];
  for (const [code, url] of targets) {
    if (!CODE.test(code)) throw new Error(`not a short code: ${code}`);
    if (UNSAFE_URL.test(url)) throw new Error(`the nginx ceiling cannot serve ${url}: it contains a quote, backslash, $ or space`);
    const key = byLowerCase.get(code.toLowerCase()) === 1 ? `"/${code}"` : `"~^/${code}$"`;
    entries.push(`        ${key} "${url}";`);
  }

  const port = await freePort();
  const dir = nginxDir();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes ${options.workers ?? 1};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 4096; }
http {
    access_log off;
${tempPaths(dir)}
    map_hash_max_size ${Math.max(2048, targets.size * 4)};
    map_hash_bucket_size 128;
    map $uri $shunt_target {
        default "";
${entries.join('\n')}
    }
    server {
        listen 127.0.0.1:${port};
        # As the node:http ceiling: connections are never recycled during a run.
        keepalive_timeout 72s;
        keepalive_requests 10000000;
        location / {
            if ($shunt_target = "") {
                return 404;
            }
            add_header Cache-Control "private, no-store" always;
            return 302 $shunt_target;
        }
    }
}
`,
  );
  const nginx = await runNginx(dir, port);
  return { url: nginx.url, stop: nginx.stop };
}
