/**
 * Background threads (the embedded store, the click consumer, QR rendering) give way to the
 * thread that answers redirects: on Linux a thread has a nice value of its own, so the
 * calling thread lowers its own CPU priority and the scheduler runs the HTTP thread first
 * whenever both want a core. Idle cores are still theirs: a nice thread loses only when
 * there is contention. Elsewhere (or where /proc is hidden) nothing changes.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** Nice 10: about a tenth of the CPU share of a nice-0 thread when both are runnable. */
export const BACKGROUND_NICE = 10;

/** Lowers the calling thread's priority; returns the nice value set, or null when the platform has none per thread. */
export function runAsBackgroundThread(nice = BACKGROUND_NICE): number | null {
  if (process.platform !== 'linux') return null;
  try {
    // "<pid>/task/<tid>": the kernel's id of this very thread.
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return null;
    setPriority(tid, nice);
    return nice;
  } catch {
    return null;
  }
}
