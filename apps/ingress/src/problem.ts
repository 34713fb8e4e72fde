import type { Context } from 'hono';
import { PROBLEM_BASE } from '@janus/contracts';
import { COMMON_PROBLEMS, problem } from '@janus/http';

export { invalidRequest, PROBLEM_CONTENT_TYPE, problem, retryAfterSeconds, type FieldError } from '@janus/http';

/** Problem types of the ingress; `unknown-job-type` is named by the contract, the others are ours. */
export const PROBLEM = {
  ...COMMON_PROBLEMS,
  forbidden: `${PROBLEM_BASE}/tenant-not-configured`,
  unknownJobType: `${PROBLEM_BASE}/unknown-job-type`,
  unprocessable: `${PROBLEM_BASE}/unprocessable`,
  /** CONTRACT §3 v1.1: a cost or batch larger than a limit's capacity (422). */
  exceedsCapacity: `${PROBLEM_BASE}/exceeds-capacity`,
  leaseConflict: `${PROBLEM_BASE}/lease-conflict`,
  /** DELETE of a job that no longer waits (running or finished), or that is being admitted right now (409). */
  notCancellable: `${PROBLEM_BASE}/not-cancellable`,
  /** POST /v1/jobs/{jobId}/replay of a job that is not dead (409; `detail` names its status). */
  notReplayable: `${PROBLEM_BASE}/not-replayable`,
  idempotencyKeyReused: `${PROBLEM_BASE}/idempotency-key-reused`,
  /** The idempotency key names an admission that is still being published: ask again shortly (409, Retry-After). */
  idempotencyKeyInProgress: `${PROBLEM_BASE}/idempotency-key-in-progress`,
} as const;

export type ProblemStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export function unavailable(detail: string, retryAfterS = 1): Response {
  return problem(503, PROBLEM.unavailable, 'Service unavailable', { detail, headers: { 'retry-after': String(retryAfterS) } });
}

export type { Context };
