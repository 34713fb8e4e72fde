import type { Problem } from './types.js';

/**
 * What went wrong when a call produced no decision:
 * - `http`: Janus (or something in front of it) answered a status the call does not expect — 401
 *   (a missing, unknown or revoked key: a configuration fault), 403 (the tenant is not in the
 *   running policy), 429 without a limiter decision (too many failed authentications), 5xx, …
 * - `network`: no answer (connection refused, reset, DNS).
 * - `timeout`: no complete answer within `timeoutMs`.
 * - `aborted`: the caller's `signal` aborted the call.
 * - `protocol`: an answer whose body is not what the status promises (not JSON, fields missing).
 */
export type JanusClientErrorCode = 'http' | 'network' | 'timeout' | 'aborted' | 'protocol';

export interface JanusClientErrorInit {
  readonly code: JanusClientErrorCode;
  readonly status?: number | undefined;
  readonly problem?: Problem | undefined;
  readonly retryAfterMs?: number | undefined;
  readonly cause?: unknown;
}

/**
 * A fault: the request got no decision that the result types describe. Decisions (admitted,
 * rejected, invalid, unavailable, …) are returned, never thrown.
 *
 * A `network` or `timeout` fault on a submission leaves its fate unknown (it may have been admitted
 * before the answer was lost): send it again with the same idempotency key to find out safely.
 */
export class JanusClientError extends Error {
  override readonly name = 'JanusClientError';
  readonly code: JanusClientErrorCode;
  /** The HTTP status, when there was an answer. */
  readonly status: number | undefined;
  /** The answer's problem details (RFC 9457), when it had any. */
  readonly problem: Problem | undefined;
  /** From `Retry-After`, when the answer had one (e.g. a 503 of `get` or `usage`). */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, init: JanusClientErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.status = init.status;
    this.problem = init.problem;
    this.retryAfterMs = init.retryAfterMs;
  }
}
