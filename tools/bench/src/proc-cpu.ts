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
