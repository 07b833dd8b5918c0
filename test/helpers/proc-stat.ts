/** CPU time and parentage of processes and threads as /proc tells it (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on Linux

/**
 * utime + stime, in ms, the nice value, and the CPU of children it has reaped (cutime +
 * cstime: a PostgreSQL backend that exits hands its time to the postmaster there).
 */
export function procStat(path: string): { ms: number; childrenMs: number; nice: number; comm: string; ppid: number } | null {
  try {
    const text = readFileSync(path, 'utf8');
    const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // After the comm: state is field 3, ppid 4, utime 14, stime 15, nice 19 (1-based, man 5 proc).
    return { ppid: Number(fields[1]), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS, childrenMs: ((Number(fields[13]) + Number(fields[14])) * 1000) / TICKS, nice: Number(fields[16]), comm };
  } catch {
    return null;
  }
}

/** Every process now running, by pid; those that end while being read are left out. */
function processTable(): Map<number, { ms: number; ppid: number }> {
  const stats = new Map<number, { ms: number; ppid: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const process = procStat(`/proc/${entry}/stat`);
    if (process !== null) stats.set(Number(entry), process);
  }
  return stats;
}

/** The pids whose parent is `parent` now. */
export function childrenOf(parent: number): number[] {
  return [...processTable()].filter(([, process]) => process.ppid === parent).map(([pid]) => pid);
}

/** CPU ms of a process and all its descendants (an instance and its cluster processes). */
export function treeCpuMs(root: number): number {
  const stats = processTable();
  const inTree = (pid: number): boolean => {
    for (let at: number | undefined = pid; at !== undefined && at > 1; at = stats.get(at)?.ppid) if (at === root) return true;
    return false;
  };
  let ms = 0;
  for (const [pid, process] of stats) if (inTree(pid)) ms += process.ms;
  return ms;
}

/** CPU ms so far of the processes `pids` (PostgreSQL backends, say); those gone count 0. */
export function cpuMsOf(pids: Iterable<number>): number {
  let ms = 0;
  for (const pid of pids) ms += procStat(`/proc/${pid}/stat`)?.ms ?? 0;
  return ms;
}
