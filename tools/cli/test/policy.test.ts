import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { diffPolicies } from '@janus/policy';
import { runCli, type CliIo } from '../src/index.js';
import { loadPolicyFile, policyWarnings, renderDiff } from '../src/commands/policy.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const example = path.join(root, 'infra/policy.example.yaml');

/** The CLI in-process, with what it printed; any request fails the test. */
async function cli(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { env, out: (l) => out.push(l), err: (l) => err.push(l), fetch: () => Promise.reject(new Error('no request expected')) };
  return { code: await runCli(argv, io), out, err };
}

// Moved from tools/policy-cli; the REST round trip is in test/cli.test.ts (and apps/policy-admin/test/e2e.test.ts).
describe('janus policy (offline parts)', () => {
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

  it('refuses bad arguments with exit 2, before any request and without a token', async () => {
    const xml = await cli(['policy', 'get', '-o', 'xml']);
    expect(xml.code).toBe(2);
    expect(xml.err[0]).toBe('--output must be one of yaml, json, not "xml"');
    expect((await cli(['policy', 'apply', '-f'])).err[0]).toMatch(/argument missing/);
    expect((await cli(['policy', 'apply', '--force'])).err[0]).toBe("Unknown option '--force'");
    expect((await cli(['policy', 'apply'])).err[0]).toBe('policy apply needs -f <file>');
    expect((await cli(['policy', 'apply', '-f', '/nonexistent.yaml'])).code).toBe(2);
    expect((await cli(['policy', 'frobnicate'])).code).toBe(2);
    expect((await cli(['policy'])).code).toBe(2);
    const help = await cli(['policy', '--help']);
    expect(help.code).toBe(0);
    expect(help.out.join('\n')).toContain('apply -f <file|->');
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

  it('shows a job type\'s dedupe (v1.1) in the diff policy-admin computes', () => {
    const before = PolicyDocument.parse({ jobTypes: { report: {} } });
    const after = PolicyDocument.parse({ jobTypes: { report: { dedupe: { by: 'payload', windowMs: 3_600_000 } } } });
    const lines = renderDiff(diffPolicies(before, after));
    expect(lines[0]).toBe('~ jobTypes.report');
    expect(lines.filter((l) => l.startsWith('+')).join('\n')).toMatch(/dedupe:\n\+ +by: payload\n\+ +windowMs: 3600000/);
    expect(lines.filter((l) => l.startsWith('-')).join('\n')).not.toContain('dedupe');
  });

  it('exits 3 without a token, and names JANUS_ADMIN_URL when policy-admin cannot be reached', async () => {
    const none = await cli(['policy', 'get']);
    expect(none.code).toBe(3);
    expect(none.err[0]).toContain('JANUS_ADMIN_TOKEN is not set');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['policy', 'get'], { env: { JANUS_ADMIN_TOKEN: 't', JANUS_ADMIN_URL: 'http://127.0.0.1:1' }, out: (l) => out.push(l), err: (l) => err.push(l) });
    expect(code).toBe(3);
    expect(err[0]).toContain('cannot reach policy-admin at http://127.0.0.1:1 (JANUS_ADMIN_URL)');
  });
});
