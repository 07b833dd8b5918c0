/**
 * A local stand-in for the image the Dockerfile builds FROM, for machines that reach no
 * container registry: a minimal Debian bookworm made with debootstrap from this machine's
 * Debian mirror, with this machine's Node 20 and npm, its CA bundle (npm in the build reaches
 * the registry through this machine's TLS proxy), and the `node` user (uid 1000) of the
 * official image. The root filesystem is cached as a tar for the day; without the cache, it
 * takes a couple of minutes to make.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The Debian mirror this machine's apt uses (deb822 or one-line sources), for bookworm itself. */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list', ...listDir('/etc/apt/sources.list.d').map((name) => join('/etc/apt/sources.list.d', name))];
  for (const file of files.filter((name) => /\.(list|sources)$/.test(name) && existsSync(name))) {
    const text = readFileSync(file, 'utf8');
    for (const uri of [...text.matchAll(/^URIs:\s*(\S+)/gm), ...text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/gm)].map((match) => match[1] ?? '')) {
      if (/\/debian\/?$/.test(uri)) return uri;
    }
  }
  return 'http://deb.debian.org/debian';
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The base rootfs tar for today, made with debootstrap when not cached yet. */
function debianRootfsTar(log: (line: string) => void): string {
  const cacheDir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'shunt-image-test');
  mkdirSync(cacheDir, { recursive: true });
  const tar = join(cacheDir, `bookworm-minbase-${new Date().toISOString().slice(0, 10)}.tar`);
  if (existsSync(tar)) return tar;
  for (const stale of listDir(cacheDir).filter((name) => name.startsWith('bookworm-minbase-'))) rmSync(join(cacheDir, stale), { force: true });
  const work = mkdtempSync(join(tmpdir(), 'shunt-debootstrap-'));
  try {
    const mirror = debianMirror();
    log(`debootstrap bookworm from ${mirror}`);
    execFileSync('debootstrap', ['--variant=minbase', 'bookworm', join(work, 'rootfs'), mirror], { stdio: 'ignore', timeout: 20 * 60_000 });
    execFileSync('tar', ['-C', join(work, 'rootfs'), '-cf', `${tar}.partial`, '.'], { stdio: 'ignore' });
    renameSync(`${tar}.partial`, tar);
    return tar;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Imports the stand-in under `name` (the Dockerfile's FROM) with `podman import`. */
export function importStandInBaseImage(name: string, env: NodeJS.ProcessEnv, log: (line: string) => void): void {
  const work = mkdtempSync(join(tmpdir(), 'shunt-base-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    execFileSync('tar', ['-C', rootfs, '-xf', debianRootfsTar(log)], { stdio: 'ignore' });
    // Node and npm where the official image has them.
    const node = process.execPath;
    const npm = join(execFileSync('npm', ['root', '--global'], { encoding: 'utf8' }).trim(), 'npm');
    mkdirSync(join(rootfs, 'usr/local/bin'), { recursive: true });
    mkdirSync(join(rootfs, 'usr/local/lib/node_modules'), { recursive: true });
    cpSync(node, join(rootfs, 'usr/local/bin/node'));
    cpSync(npm, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(rootfs, 'usr/local/bin/npx'));
    cpSync(CA_BUNDLE, join(rootfs, CA_BUNDLE.slice(1)));
    appendFileSync(join(rootfs, 'etc/group'), 'node:x:1000:\n');
    appendFileSync(join(rootfs, 'etc/passwd'), 'node:x:1000:1000::/home/node:/bin/sh\n');
    mkdirSync(join(rootfs, 'home/node'));
    execFileSync('chown', ['1000:1000', join(rootfs, 'home/node')]);
    const changes = [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`,
      `ENV NPM_CONFIG_CAFILE=${CA_BUNDLE}`,
      'CMD ["node"]',
    ].flatMap((change) => ['--change', change]);
    execFileSync('sh', ['-c', `tar -C "$1" -c . | podman import ${changes.map((c) => `'${c}'`).join(' ')} - "$2"`, 'sh', rootfs, name], { env, stdio: 'ignore' });
    log(`imported ${name} (node ${process.version} from ${node})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
