import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Where the development signing key is kept, under the checkout's `.janus/` (git-ignored). */
export const DEV_SIGNING_KEY_FILE = path.join('.janus', 'signing-key');

/**
 * The signing key of a development deployment that does not set JANUS_SIGNING_KEY: one key for
 * every app started from this checkout, kept in `<checkout>/.janus/signing-key` (created on first
 * use, mode 0600), so that ingress and the retry-scheduler agree on lease tokens however they were
 * started (`npm start`, or each app alone with `npx nx serve <app>`), and tokens stay valid across a
 * restart. The checkout is the nearest directory above `from` holding `nx.json`; outside one
 * (undefined is returned) the caller generates a key for the process, as before.
 */
export function devSigningKey(from: string = process.cwd()): { readonly key: string; readonly file: string } | undefined {
  const root = checkoutRoot(from);
  if (root === undefined) return undefined;
  const file = path.join(root, DEV_SIGNING_KEY_FILE);
  const kept = readKey(file);
  if (kept !== undefined) return { key: kept, file };
  // Created whole or not at all: written to a file of this process's own, then linked into place
  // (link fails if another process was first; then its key is the one).
  mkdirSync(path.dirname(file), { recursive: true });
  const mine = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(mine, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  try {
    linkSync(mine, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    rmSync(mine, { force: true });
  }
  const key = readKey(file);
  return key === undefined ? undefined : { key, file };
}

function readKey(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const key = readFileSync(file, 'utf8').trim();
  return key.length >= 32 ? key : undefined;
}

function checkoutRoot(from: string): string | undefined {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'nx.json'))) return dir;
    if (path.dirname(dir) === dir) return undefined;
  }
}
