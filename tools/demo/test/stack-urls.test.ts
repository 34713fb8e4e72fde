import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('npm start: the service stack', () => {
  it('takes NATS_URL as the list it is: a later server that answers is used, no local one is started for the first', async () => {
    const down = await closedPort();
    const run = spawnSync(process.execPath, ['tools/scripts/stack.mjs'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, NATS_URL: `nats://127.0.0.1:${down},nats://127.0.0.1:4222` },
      timeout: 30_000,
    });
    expect(run.status, run.stderr).toBe(0);
    // (before: "nats started locally on <down>", and the apps used that new, empty server)
    expect(run.stdout).toContain('nats       up at nats://127.0.0.1:4222');
    expect(run.stdout).not.toContain(`started locally on ${down}`);
  });
});
