import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export interface NatsServerProcess {
  readonly port: number;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** The temporary directory holding the configuration, its files and the JetStream store. */
  readonly dir: string;
  /** Everything the server wrote so far. */
  output(): string;
  /** Stops it (SIGTERM, SIGKILL after 5 s) and deletes its directory. */
  stop(): Promise<void>;
}

/**
 * A nats-server of the test's own (`nats-server` from the PATH, or /usr/sbin/nats-server) on a free
 * port, JetStream on, its store in a fresh temporary directory. `config` is appended to the
 * generated configuration (`include ./nats-auth.conf`, say), `files` are written next to it first,
 * and `env` is the server's environment on top of this process's (the passwords a configuration
 * names with `$VARIABLE`). Resolves when the server is ready; rejects with its output if it exits.
 */
export async function startNatsServer(opts: { config?: string; files?: Readonly<Record<string, string>>; env?: Readonly<Record<string, string>>; binary?: string } = {}): Promise<NatsServerProcess> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'janus-nats-'));
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(path.join(dir, name), text);
  const conf = path.join(dir, 'server.conf');
  writeFileSync(conf, [`listen: 127.0.0.1:${port}`, `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'store'))} }`, opts.config ?? '', ''].join('\n'));
  const binary = opts.binary ?? 'nats-server';
  let output = '';
  const child: ChildProcess = spawn(binary, ['-c', conf], {
    cwd: dir,
    env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin`, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (error) => (output += `\n${String(error)}`));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(force);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server exited early:\n${output}`);
        return output.includes('Server is ready');
      },
      15_000,
      20,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, url: `nats://127.0.0.1:${port}`, dir, output: () => output, stop };
}
