import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { loadPolicyFile, parseArgs, policyWarnings, renderDiff, runCli } from './cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const example = path.join(root, 'infra/policy.example.yaml');

describe('policy-cli (offline parts; the REST round trip is tested in apps/policy-admin/test/e2e.test.ts)', () => {
  it('the example policy in the repository is a valid policy document', async () => {
    const doc = await loadPolicyFile(example, {});
    const parsed = PolicyDocument.safeParse(doc);
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
    expect(Object.keys((doc as { jobTypes: object }).jobTypes)).toEqual(['charge-card', 'send-email', 'summarize-document', 'nightly-report']);
  });

  it('reads a policy from stdin with -', async () => {
    const text = await readFile(example, 'utf8');
    expect(await loadPolicyFile('-', { readStdin: async () => text })).toEqual(await loadPolicyFile(example, {}));
  });

  it('parses arguments and refuses bad ones', () => {
    expect(parseArgs(['apply', '-f', 'p.yaml', '--if-match', '3'])).toMatchObject({ command: 'apply', file: 'p.yaml', ifMatch: '3' });
    expect(parseArgs(['get', '-o', 'json'])).toMatchObject({ command: 'get', output: 'json' });
    expect(parseArgs(['get', '-o', 'xml'])).toEqual({ error: '-o must be yaml or json, not "xml"' });
    expect(parseArgs(['apply', '-f'])).toEqual({ error: '-f needs a value' });
    expect(parseArgs(['apply', '--force'])).toEqual({ error: 'unknown option --force' });
  });

  it('warns about a dependency bucket whose burst equals its limit (2 × limit in one period), not about a window or a smaller burst', () => {
    const warnings = policyWarnings({
      dependencies: {
        api: { rate: { limit: 5, periodMs: 1000 } },
        tokens: { costRate: { limit: 100, periodMs: 60_000, burst: 100 }, perTenant: { rate: { limit: 2, periodMs: 1000, burst: 1 } } },
        strict: { rate: { limit: 5, periodMs: 1000, kind: 'window' } },
      },
      tenants: { acme: { rate: { limit: 5, periodMs: 1000 } } },
    });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^dependencies\.api\.rate: a bucket with burst = limit admits up to 10 in one periodMs .* kind: window/);
    expect(warnings[1]).toMatch(/^dependencies\.tokens\.costRate: .* up to 200 /);
    expect(policyWarnings('not a policy')).toEqual([]);
  });

  it('renders a diff per resource', () => {
    expect(renderDiff([])).toEqual(['no changes']);
    expect(renderDiff([{ op: 'change', path: 'dependencies.db', before: { concurrency: 5 }, after: { concurrency: 8 } }, { op: 'remove', path: 'tenants.x' }])).toEqual([
      '~ dependencies.db',
      '-   concurrency: 5',
      '+   concurrency: 8',
      '- tenants.x',
    ]);
  });

  it('exits 2 on usage errors and 1 without a token, before any request', async () => {
    const err: string[] = [];
    const io = { env: {}, out: () => undefined, err: (l: string) => err.push(l), fetch: () => Promise.reject(new Error('no request expected')) };
    expect(await runCli([], io)).toBe(2);
    expect(await runCli(['frobnicate'], io)).toBe(2);
    expect(await runCli(['apply'], { ...io, env: { JANUS_ADMIN_TOKEN: 't' } })).toBe(2);
    expect(await runCli(['get'], io)).toBe(1);
    expect(err.join('\n')).toContain('JANUS_ADMIN_TOKEN is not set');
  });

  it('names JANUS_ADMIN_URL when policy-admin cannot be reached', async () => {
    const err: string[] = [];
    const code = await runCli(['get'], { env: { JANUS_ADMIN_TOKEN: 't', JANUS_ADMIN_URL: 'http://127.0.0.1:1' }, out: () => undefined, err: (l) => err.push(l) });
    expect(code).toBe(1);
    expect(err[0]).toContain('cannot reach policy-admin at http://127.0.0.1:1 (JANUS_ADMIN_URL)');
  });
});
