import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** User + system CPU of a process in µs, from /proc (Linux); undefined elsewhere. */
export function cpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5); here indexes 11 and 12 after "pid (comm) ".
    // USER_HZ is 100 on every Linux that Node supports.
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** The pids of the processes named `name` (pgrep -x), e.g. postgres's backends. */
export function pidsOf(name: string): number[] {
  try {
    return execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).split('\n').filter((l) => l.trim() !== '').map(Number);
  } catch {
    return [];
  }
}

/** User + system CPU of several processes together, in µs (processes that exited since count 0). */
export function cpuUsOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (cpuUs(pid) ?? 0), 0);
}
