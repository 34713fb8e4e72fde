import { CliFailure, EXIT, asProblem, exitForStatus, problemLines, type CliIo } from './io.js';

export interface AdminAnswer {
  readonly status: number;
  /** The parsed JSON body; undefined when there was none (204) or it was not JSON. */
  readonly body: unknown;
}

/**
 * The policy-admin REST API (CONTRACT §5): `JANUS_ADMIN_URL` (default http://127.0.0.1:8081) with
 * `Authorization: Bearer $JANUS_ADMIN_TOKEN`. Read from the environment when a command runs, after
 * its arguments were checked: a usage error never needs a token.
 */
export class AdminApi {
  readonly base: string;
  readonly #token: string;
  readonly #fetch: NonNullable<CliIo['fetch']>;

  constructor(io: CliIo) {
    this.base = (io.env['JANUS_ADMIN_URL'] || 'http://127.0.0.1:8081').replace(/\/+$/, '');
    const token = io.env['JANUS_ADMIN_TOKEN'];
    if (!token) throw new CliFailure(EXIT.unavailable, 'JANUS_ADMIN_TOKEN is not set (policy-admin prints a dev token at start in development; `npm start` keeps it in .janus/admin-token)');
    this.#token = token;
    this.#fetch = io.fetch ?? fetch;
  }

  /** One request; no answer at all (refused connection, DNS, 10 s without one) is exit 3. */
  async call(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Promise<AdminAnswer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json, application/problem+json', ...opts.headers };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(`${this.base}${path}`, {
        method,
        headers,
        signal: AbortSignal.timeout(10_000),
        ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      });
      text = await res.text();
    } catch (error) {
      const e = error as Error;
      throw new CliFailure(EXIT.unavailable, `cannot reach policy-admin at ${this.base} (JANUS_ADMIN_URL): ${e.cause instanceof Error ? e.cause.message : e.message}`);
    }
    let body: unknown;
    try {
      body = text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  }

  /** `call`, and anything but one of the `ok` statuses is a failure naming what policy-admin said. */
  async expect(ok: readonly number[], method: string, path: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Promise<AdminAnswer> {
    const answer = await this.call(method, path, opts);
    if (ok.includes(answer.status)) return answer;
    throw adminFailure(answer);
  }
}

/** A refusal or fault of policy-admin: its problem on stderr (and stdout under --json), with a hint where one helps. */
export function adminFailure(answer: AdminAnswer): CliFailure {
  const problem = asProblem(answer.status, answer.body);
  const [first = '', ...rest] = problemLines(problem);
  if (answer.status === 401) rest.push('check JANUS_ADMIN_TOKEN');
  if (answer.status === 412) rest.push('the policy changed since the version you named: read it again (janus policy get) and retry');
  return new CliFailure(exitForStatus(answer.status, problem.type), `policy-admin answered ${first}`, rest, answer.body ?? problem);
}

/** A path segment for a name or id typed by the user. */
export const seg = (value: string) => encodeURIComponent(value);
