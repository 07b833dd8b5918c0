/**
 * The URL a worker thread is started from. Built, it is the .js module beside the caller;
 * under tsx (tests, benchmarks) the sources are .ts, and a worker thread does not get the
 * loader from the command line, so a one-line module registers it first.
 */
export function threadEntry(callerUrl: string, name: string): URL {
  if (!callerUrl.endsWith('.ts')) return new URL(`./${name}.js`, callerUrl);
  const entry = new URL(`./${name}.ts`, callerUrl);
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(entry.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(boot)}`);
}
