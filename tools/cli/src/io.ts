import type { FieldError, FetchLike, Problem } from '@janus/client';

/**
 * Exit codes scripts can rely on (README, `janus --help`):
 * - 0: done.
 * - 1: Janus answered and refused, or the thing failed: a 4xx decision (404 not found, 409 not
 *   cancellable / not replayable, 412 stale version, 422 invalid, 429 rejected, …).
 * - 2: usage: bad arguments, found before any request was sent.
 * - 3: configuration or infrastructure: a variable not set, Janus (or NATS) unreachable, a 5xx
 *   (503 included: nothing was done, try again), 401/403 (the key or token is wrong; also the 429
 *   that follows 20 such failures).
 */
export const EXIT = { ok: 0, refused: 1, usage: 2, unavailable: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Everything the CLI touches outside itself, so that tests can run it in-process. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Reads all of stdin (`-f -`, `--payload -`); defaults to process.stdin. */
  readonly readStdin?: () => Promise<string>;
  /** Defaults to the global fetch. */
  readonly fetch?: FetchLike;
}

/**
 * The way out of a command that did not succeed: runCli prints `message` and `details` on stderr
 * and, under `--json`, `body` (what Janus answered) on stdout, then exits with `code`.
 */
export class CliFailure extends Error {
  constructor(
    readonly code: ExitCode,
    message: string,
    readonly details: readonly string[] = [],
    readonly body?: unknown,
  ) {
    super(message);
  }
}

/** Bad arguments (exit 2); runCli adds where to find the command's usage. */
export class UsageError extends CliFailure {
  constructor(message: string) {
    super(EXIT.usage, message);
  }
}

/** Janus's 429 for an address after 20 failed authentications: the key or token is wrong, as a 401 says. */
const TOO_MANY_AUTH_FAILURES = 'https://janus.dev/problems/too-many-auth-failures';

/** The exit code an HTTP status (and its problem type, when there is one) means when it is not the success a command expects. */
export function exitForStatus(status: number, problemType?: string): ExitCode {
  if (status === 401 || status === 403 || status >= 500 || problemType === TOO_MANY_AUTH_FAILURES) return EXIT.unavailable;
  if (status >= 400) return EXIT.refused;
  // A 2xx or 3xx other than the one expected: not Janus's API answering (a proxy, a wrong URL).
  return EXIT.unavailable;
}

/** A problem+json answer as stderr lines: status and title, the detail, then each field error. */
export function problemLines(problem: Pick<Problem, 'status' | 'title' | 'detail' | 'errors'>): string[] {
  const lines = [`${problem.status} ${problem.title}${problem.detail !== undefined && problem.detail !== '' ? `: ${problem.detail}` : ''}`];
  for (const e of problem.errors ?? []) lines.push(`  ${e.path}: ${e.message}`);
  return lines;
}

/** Reads a problem+json body loosely: whatever Janus (or a proxy) answered, a problem to print. */
export function asProblem(status: number, body: unknown): Problem {
  const b = isObject(body) ? body : {};
  const errors = Array.isArray(b['errors']) ? b['errors'].filter((e): e is FieldError => isObject(e) && typeof e['path'] === 'string' && typeof e['message'] === 'string') : [];
  return {
    type: typeof b['type'] === 'string' ? b['type'] : 'about:blank',
    title: typeof b['title'] === 'string' ? b['title'] : `HTTP ${status}`,
    status,
    ...(typeof b['detail'] === 'string' ? { detail: b['detail'] } : {}),
    ...(errors.length > 0 ? { errors } : {}),
  };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How a command prints its result: JSON on stdout under `--json`, lines for people otherwise. */
export class Output {
  constructor(
    readonly io: CliIo,
    readonly json: boolean,
  ) {}

  /** The result: `value` as JSON under `--json`, else what `human` prints. */
  result(value: unknown, human: () => void): void {
    if (this.json) this.io.out(JSON.stringify(value, null, 2));
    else human();
  }

  line(text = ''): void {
    this.io.out(text);
  }

  /** Aligned columns with a header; an empty list prints `empty` instead. */
  table(header: readonly string[], rows: readonly (readonly string[])[], empty = '(none)', indent = ''): void {
    if (rows.length === 0) {
      this.io.out(`${indent}${empty}`);
      return;
    }
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const format = (cells: readonly string[]) =>
      `${indent}${cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd()}`;
    this.io.out(format(header));
    for (const r of rows) this.io.out(format(r));
  }

  /** `label  value` pairs, labels aligned; undefined values are left out. */
  fields(pairs: readonly (readonly [string, string | undefined])[]): void {
    const shown = pairs.filter((p): p is readonly [string, string] => p[1] !== undefined);
    const width = Math.max(0, ...shown.map(([k]) => k.length));
    for (const [k, v] of shown) this.io.out(`${k.padEnd(width)}  ${v}`);
  }

  /** A warning or a note: stderr, so it never mixes into machine output. */
  note(text: string): void {
    this.io.err(text);
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
