import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './processes.js';
import { waitFor } from './wait.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('killOnExit', () => {
  it('kills a registered child when its parent dies of an uncaught error', async () => {
    // The parent (a real Node process) starts a long-lived child, registers it, prints its pid and
    // then crashes; the child must not survive it.
    const parent = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { spawn } from 'node:child_process';
         import { killOnExit } from './libs/testing/src/processes.ts';
         const child = killOnExit(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }));
         process.stdout.write(child.pid + '\\n');
         setTimeout(() => { throw new Error('crash'); }, 200);`,
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => parent.once('exit', (code) => resolve(code)));
    const pid = await waitFor(async () => (/^\d+\n/.test(out) ? Number(out.trim()) : undefined), 20_000, 20);
    expect(alive(pid)).toBe(true);
    expect(await exited).not.toBe(0);
    await waitFor(async () => !alive(pid), 5_000, 20);
    expect(alive(pid)).toBe(false);
  }, 30_000);
});
