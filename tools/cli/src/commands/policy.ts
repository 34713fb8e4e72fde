import { readFile } from 'node:fs/promises';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { AdminApi } from '../admin.js';
import { oneOf, parse } from '../args.js';
import { UsageError, isObject, readStdin, type CliIo, type Output } from '../io.js';

/**
 * `janus policy get|diff|apply` (formerly tools/policy-cli, `npm run policy`): the policy as a file,
 * spoken over the policy-admin REST API (`GET /v1/policy`, `PUT /v1/policy[?dryRun=true]`), so that
 * policies can live in git.
 */
export const POLICY_USAGE = `usage: janus policy <command> [--json]
  get   [-o yaml|json]                 print the live policy (YAML, its version as a comment)
  diff  -f <file|->                    what applying the file would change (nothing is changed)
  apply -f <file|-> [--if-match <version>]
                                       replace the live policy with the file (YAML or JSON; - is stdin);
                                       --if-match: 412 (exit 1) if the policy moved past that version
diff and apply warn on stderr about valid but probably unintended limits.
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

interface Change {
  op: 'add' | 'remove' | 'change';
  path: string;
  before?: unknown;
  after?: unknown;
}

export async function policyCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'get': {
      const { values } = parse(argv, { output: { type: 'string', short: 'o' } }, { names: [] });
      const format = values.json ? 'json' : (oneOf('output', values.output, ['yaml', 'json'] as const) ?? 'yaml');
      const { body } = await new AdminApi(io).expect([200], 'GET', '/v1/policy');
      const { version, ...document } = isObject(body) ? body : {};
      if (format === 'json') out.line(JSON.stringify({ version, ...document }, null, 2));
      else out.line(`# policy version ${String(version)}\n${toYaml(document).trimEnd()}`);
      return;
    }
    case 'diff':
    case 'apply': {
      const { values } = parse(argv, { file: { type: 'string', short: 'f' }, 'if-match': { type: 'string' } }, { names: [] });
      if (values.file === undefined) throw new UsageError(`policy ${sub} needs -f <file>`);
      const ifMatch = values['if-match'];
      if (ifMatch !== undefined && !/^\d+$/.test(ifMatch)) throw new UsageError(`--if-match must be a policy version (a number), not "${ifMatch}"`);
      let document: unknown;
      try {
        document = await loadPolicyFile(values.file, io);
      } catch (error) {
        throw new UsageError(`cannot read ${values.file}: ${(error as Error).message}`);
      }
      const api = new AdminApi(io);
      const dryRun = sub === 'diff';
      const { body } = await api.expect([200], 'PUT', `/v1/policy${dryRun ? '?dryRun=true' : ''}`, {
        body: document,
        ...(ifMatch !== undefined ? { headers: { 'if-match': ifMatch } } : {}),
      });
      const answer = isObject(body) ? body : {};
      const warnings = policyWarnings(document);
      for (const warning of warnings) out.note(`warning: ${warning}`);
      out.result({ ...answer, warnings }, () => {
        for (const line of renderDiff(Array.isArray(answer['diff']) ? (answer['diff'] as Change[]) : [])) out.line(line);
        if (dryRun) out.line(`(dry run against version ${String(answer['version'])}: nothing changed)`);
        else if (answer['changed'] === true) out.line(`applied: policy version ${String(answer['previousVersion'])} → ${String(answer['version'])}`);
        else out.line(`unchanged: policy version ${String(answer['version'])}`);
      });
      return;
    }
    default:
      throw new UsageError(sub === undefined ? 'policy needs a command' : `unknown command "policy ${sub}"`);
  }
}

/** Reads a YAML (or JSON: YAML's subset) policy file; `-` is stdin. */
export async function loadPolicyFile(file: string, io: Pick<CliIo, 'readStdin'>): Promise<unknown> {
  const text = file === '-' ? await (io.readStdin ?? readStdin)() : await readFile(file, 'utf8');
  const doc: unknown = parseYaml(text, { prettyErrors: true });
  return doc ?? {};
}

/** A readable diff: one block per changed resource, in YAML. */
export function renderDiff(changes: readonly Change[]): string[] {
  if (changes.length === 0) return ['no changes'];
  const lines: string[] = [];
  const indent = (prefix: string, value: unknown) =>
    toYaml(value ?? null)
      .trimEnd()
      .split('\n')
      .map((l) => `${prefix}   ${l}`);
  for (const c of changes) {
    const sign = c.op === 'add' ? '+' : c.op === 'remove' ? '-' : '~';
    lines.push(`${sign} ${c.path}`);
    if (c.op === 'change') lines.push(...indent('-', c.before), ...indent('+', c.after));
    else if (c.op === 'add') lines.push(...indent('+', c.after));
  }
  return lines;
}

/**
 * Advice on a policy that is valid but probably not what its author meant. A dependency `bucket`
 * rate whose burst equals its limit (the default) admits up to 2 × limit in one periodMs — a full
 * bucket, then the refill — while most external APIs state "at most N in any period" (a sliding
 * window). CONTRACT §2: `kind: "window"` says exactly that.
 */
export function policyWarnings(document: unknown): string[] {
  const warnings: string[] = [];
  const deps = (document as { dependencies?: unknown } | null)?.dependencies;
  if (deps === null || typeof deps !== 'object') return warnings;
  const check = (path: string, rate: unknown) => {
    if (rate === null || typeof rate !== 'object') return;
    const r = rate as { limit?: unknown; periodMs?: unknown; burst?: unknown; kind?: unknown };
    if ((r.kind ?? 'bucket') !== 'bucket' || typeof r.limit !== 'number') return;
    if (r.burst === undefined || r.burst === r.limit) {
      warnings.push(
        `${path}: a bucket with burst = limit admits up to ${r.limit * 2} in one periodMs (${r.limit} at once, then ${r.limit} refilled); ` +
          `if the API allows at most ${r.limit} in any ${String(r.periodMs)} ms, say kind: window (or set a smaller burst)`,
      );
    }
  };
  for (const [name, dep] of Object.entries(deps as Record<string, unknown>)) {
    if (dep === null || typeof dep !== 'object') continue;
    const d = dep as { rate?: unknown; costRate?: unknown; perTenant?: { rate?: unknown; costRate?: unknown } };
    check(`dependencies.${name}.rate`, d.rate);
    check(`dependencies.${name}.costRate`, d.costRate);
    check(`dependencies.${name}.perTenant.rate`, d.perTenant?.rate);
    check(`dependencies.${name}.perTenant.costRate`, d.perTenant?.costRate);
  }
  return warnings;
}
