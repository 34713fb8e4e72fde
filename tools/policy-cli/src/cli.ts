import { readFile } from 'node:fs/promises';
import { parse as parseYaml, stringify as toYaml } from 'yaml';

/**
 * `npm run policy -- <command>`: policy as a file, spoken over the policy-admin REST API, so that
 * policies can live in git.
 *
 *   get   [-o yaml|json]            print the live policy (version as a comment / field)
 *   diff  -f <file|->               what applying the file would change (PUT /v1/policy?dryRun=true)
 *   apply -f <file|-> [--if-match N] replace the live policy with the file (PUT /v1/policy)
 *
 * JANUS_ADMIN_URL (default http://127.0.0.1:8081) and JANUS_ADMIN_TOKEN (required).
 * Exit codes: 0 done, 1 refused or failed (422 lists every problem), 2 usage.
 */
export interface CliIo {
  env: Record<string, string | undefined>;
  out: (line: string) => void;
  err: (line: string) => void;
  readStdin?: () => Promise<string>;
  fetch?: typeof fetch;
}

export const USAGE = `usage: npm run policy -- <command>
  get   [-o yaml|json]              print the live policy
  diff  -f <file.yaml|->            show what apply would change (nothing is changed)
  apply -f <file.yaml|-> [--if-match <version>]
                                    replace the live policy with the file
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

interface Args {
  command: string | undefined;
  file: string | undefined;
  output: 'yaml' | 'json';
  ifMatch: string | undefined;
  help: boolean;
}

export function parseArgs(argv: readonly string[]): Args | { error: string } {
  const args: Args = { command: undefined, file: undefined, output: 'yaml', ifMatch: undefined, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (a === '-h' || a === '--help') args.help = true;
      else if (a === '-f' || a === '--file') args.file = value();
      else if (a.startsWith('--file=')) args.file = a.slice(7);
      else if (a === '-o' || a === '--output') {
        const o = value();
        if (o !== 'yaml' && o !== 'json') return { error: `-o must be yaml or json, not "${o}"` };
        args.output = o;
      } else if (a === '--if-match') args.ifMatch = value();
      else if (a.startsWith('-') && a !== '-') return { error: `unknown option ${a}` };
      else if (args.command === undefined) args.command = a;
      else return { error: `unexpected argument "${a}"` };
    } catch (error) {
      return { error: (error as Error).message };
    }
  }
  return args;
}

/** Reads a YAML (or JSON) policy file; `-` is stdin. */
export async function loadPolicyFile(file: string, io: Pick<CliIo, 'readStdin'>): Promise<unknown> {
  const text = file === '-' ? await (io.readStdin ?? readStdin)() : await readFile(file, 'utf8');
  const doc: unknown = parseYaml(text, { prettyErrors: true });
  return doc ?? {};
}

interface Change {
  op: 'add' | 'remove' | 'change';
  path: string;
  before?: unknown;
  after?: unknown;
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

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv);
  if ('error' in args) {
    io.err(args.error);
    io.err(USAGE);
    return 2;
  }
  if (args.help || args.command === undefined) {
    (args.help ? io.out : io.err)(USAGE);
    return args.help ? 0 : 2;
  }
  if (!['get', 'diff', 'apply'].includes(args.command)) {
    io.err(`unknown command "${args.command}"`);
    io.err(USAGE);
    return 2;
  }
  const base = (io.env['JANUS_ADMIN_URL'] || 'http://127.0.0.1:8081').replace(/\/+$/, '');
  const token = io.env['JANUS_ADMIN_TOKEN'];
  if (!token) {
    io.err('JANUS_ADMIN_TOKEN is not set (policy-admin prints a dev token at start in development)');
    return 1;
  }
  const doFetch = io.fetch ?? fetch;
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new CliError(`cannot reach policy-admin at ${base} (JANUS_ADMIN_URL): ${(error as Error).cause ?? (error as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, json: json as Record<string, unknown> | undefined, text };
  };

  try {
    if (args.command === 'get') {
      const res = await call('GET', '/v1/policy');
      if (res.status !== 200 || !res.json) return refused(io, res);
      const { version, ...document } = res.json;
      if (args.output === 'json') io.out(JSON.stringify({ version, ...document }, null, 2));
      else io.out(`# policy version ${String(version)}\n${toYaml(document).trimEnd()}`);
      return 0;
    }
    if (!args.file) {
      io.err(`${args.command} needs -f <file>`);
      return 2;
    }
    let document: unknown;
    try {
      document = await loadPolicyFile(args.file, io);
    } catch (error) {
      io.err(`cannot read ${args.file}: ${(error as Error).message}`);
      return 1;
    }
    const headers: Record<string, string> = args.ifMatch !== undefined ? { 'if-match': args.ifMatch } : {};
    const dryRun = args.command === 'diff';
    const res = await call('PUT', `/v1/policy${dryRun ? '?dryRun=true' : ''}`, document, headers);
    if (res.status !== 200 || !res.json) return refused(io, res);
    const diff = (res.json['diff'] ?? []) as Change[];
    for (const line of renderDiff(diff)) io.out(line);
    for (const warning of policyWarnings(document)) io.err(`warning: ${warning}`);
    if (dryRun) io.out(`(dry run against version ${String(res.json['version'])}: nothing changed)`);
    else if (res.json['changed']) io.out(`applied: policy version ${String(res.json['previousVersion'])} → ${String(res.json['version'])}`);
    else io.out(`unchanged: policy version ${String(res.json['version'])}`);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      io.err(error.message);
      return 1;
    }
    throw error;
  }
}

class CliError extends Error {}

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

function refused(io: CliIo, res: { status: number; json: Record<string, unknown> | undefined; text: string }): number {
  const p = res.json ?? {};
  io.err(`policy-admin answered ${res.status}: ${String(p['title'] ?? '')}${p['detail'] ? ` — ${String(p['detail'])}` : ''}`.trim());
  const errors = Array.isArray(p['errors']) ? (p['errors'] as { path: string; message: string }[]) : [];
  for (const e of errors) io.err(`  ${e.path}: ${e.message}`);
  if (res.status === 401) io.err('check JANUS_ADMIN_TOKEN');
  if (res.status === 412) io.err('the policy changed since the version you named; re-read it (get) and retry');
  if (!res.json && res.text) io.err(res.text.slice(0, 500));
  return 1;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
