import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { devSigningKey } from './dev-signing-key.js';
import { loadSettings } from './settings.js';

const dirs: string[] = [];
function checkout(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'janus-checkout-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'nx.json'), '{}');
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('devSigningKey', () => {
  it('is one key per checkout, kept in .janus/signing-key (0600), found from any directory below it', () => {
    const root = checkout();
    const first = devSigningKey(root);
    expect(first?.key.length).toBeGreaterThanOrEqual(32);
    expect(first?.file).toBe(path.join(root, '.janus', 'signing-key'));
    expect(statSync(first!.file).mode & 0o777).toBe(0o600);
    // Another process of the same checkout (another app, or a restart), from an app's directory.
    expect(devSigningKey(path.join(root, 'apps', 'ingress'))?.key).toBe(first?.key);
    expect(readFileSync(first!.file, 'utf8').trim()).toBe(first?.key);
    // Another checkout has its own.
    expect(devSigningKey(checkout())?.key).not.toBe(first?.key);
  });

  it('outside a checkout there is none', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'janus-nowhere-'));
    dirs.push(dir);
    expect(devSigningKey(dir)).toBeUndefined();
  });

  it('loadSettings uses it in development without JANUS_SIGNING_KEY, so separately started apps agree', () => {
    const a = loadSettings({ NODE_ENV: 'development' });
    const b = loadSettings({ NODE_ENV: 'development' });
    expect(a.signingKeyGenerated).toBe(true);
    expect(a.signingKeyFile).toMatch(/\.janus[\\/]signing-key$/);
    expect(b.signingKey).toBe(a.signingKey);
    expect(loadSettings({ NODE_ENV: 'development', JANUS_SIGNING_KEY: 'k'.repeat(32) }).signingKey).toBe('k'.repeat(32));
  });
});
