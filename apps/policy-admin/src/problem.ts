import { PROBLEM_BASE } from '@janus/contracts';
import { COMMON_PROBLEMS, problem } from '@janus/http';
import type { FieldError } from '@janus/contracts';

export { PROBLEM_CONTENT_TYPE, fieldErrorsDetail, invalidRequest, problem } from '@janus/http';

export const PROBLEM = {
  ...COMMON_PROBLEMS,
  invalidPolicy: `${PROBLEM_BASE}/invalid-policy`,
  preconditionFailed: `${PROBLEM_BASE}/precondition-failed`,
  // The same type as the producers' replay (ingress), so that a client handles both alike.
  notReplayable: `${PROBLEM_BASE}/not-replayable`,
  /** 409 on /v1/admin/tokens: the name is taken by an active token, or it is `env` (JANUS_ADMIN_TOKEN). */
  adminTokenConflict: `${PROBLEM_BASE}/admin-token-conflict`,
  /** 422 on a credits top-up: the Idempotency-Key already topped up a different amount (the producers' type). */
  idempotencyKeyReused: `${PROBLEM_BASE}/idempotency-key-reused`,
} as const;

export type ProblemStatus = 400 | 401 | 404 | 405 | 409 | 412 | 413 | 415 | 422 | 429 | 500 | 503;

export const notFound = (detail: string) => problem(404, PROBLEM.notFound, 'Not found', { detail });

export const invalidPolicy = (errors: FieldError[]) =>
  problem(422, PROBLEM.invalidPolicy, 'Invalid policy', { detail: `${errors.length} problem(s); the running policy is unchanged`, errors });

export const preconditionFailed = (currentVersion: number, detail: string) =>
  problem(412, PROBLEM.preconditionFailed, 'Precondition failed', {
    detail,
    extra: { currentVersion },
    headers: { etag: `"${currentVersion}"` },
  });

/** A store the answer needs (Redis) is unreachable, or the policy is not loaded yet: ask again shortly. */
export const unavailable = (detail: string, retryAfterS = 1) =>
  problem(503, PROBLEM.unavailable, 'Service unavailable', { detail, headers: { 'retry-after': String(retryAfterS) } });
