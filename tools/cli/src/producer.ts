import { JanusClient, JanusClientError, type Problem } from '@janus/client';
import { CliFailure, EXIT, exitForStatus, problemLines, type CliIo } from './io.js';

/**
 * The producer API (CONTRACT §3) through @janus/client, as the tenant whose key is `JANUS_API_KEY`,
 * at `JANUS_URL` (default http://127.0.0.1:8080). Read when a command runs, after its arguments.
 */
export function producerClient(io: CliIo): { client: JanusClient; url: string } {
  const url = io.env['JANUS_URL'] || 'http://127.0.0.1:8080';
  const apiKey = io.env['JANUS_API_KEY'];
  if (!apiKey) throw new CliFailure(EXIT.unavailable, 'JANUS_API_KEY is not set (an API key of the tenant: janus keys create <tenant>)');
  return { client: new JanusClient({ baseUrl: url, apiKey, ...(io.fetch ? { fetch: io.fetch } : {}) }), url };
}

/**
 * Runs a client call; its faults become failures: no answer (network, timeout) and answers that
 * are no decision (401, 403, 5xx, a body that is not Janus's) are exit 3, a 4xx the client does
 * not model as a result (a 400 on a list filter) is exit 1.
 */
export async function calling<T>(url: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof JanusClientError)) throw error;
    if (error.code === 'network' || error.code === 'timeout') {
      // fetch's own "fetch failed" hides the reason (ECONNREFUSED, ENOTFOUND) in its cause
      const reason = error.cause instanceof Error && error.cause.cause instanceof Error ? error.cause.cause.message : error.message;
      throw new CliFailure(EXIT.unavailable, `cannot reach Janus at ${url} (JANUS_URL): ${reason}`);
    }
    if (error.code === 'http' && error.status !== undefined) {
      const problem = error.problem ?? { type: 'about:blank', title: `HTTP ${error.status}`, status: error.status };
      const details = problemLines(problem).slice(1);
      if (error.status === 401) details.push('check JANUS_API_KEY');
      if (error.status === 403) details.push('the key is genuine but its tenant is not in the running policy');
      throw new CliFailure(exitForStatus(error.status, problem.type), `Janus answered ${problemLines(problem)[0] ?? ''}`, details, problem);
    }
    throw new CliFailure(EXIT.unavailable, `Janus at ${url} (JANUS_URL): ${error.message}`);
  }
}

/** A decision that is not a success (404, 409, 422, 429, …): exit 1, or 3 for 503. */
export function refusal(what: string, problem: Problem, body: unknown = problem, extra: readonly string[] = []): CliFailure {
  const [first = '', ...rest] = problemLines(problem);
  return new CliFailure(exitForStatus(problem.status, problem.type), `${what}: ${first}`, [...rest, ...extra], body);
}
