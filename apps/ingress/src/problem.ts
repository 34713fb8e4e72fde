import type { Context } from 'hono';
import { PROBLEM_BASE, type ProblemDetails } from '@janus/contracts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Problem types of the ingress; `unknown-job-type` is named by the contract, the others are ours. */
export const PROBLEM = {
  invalidRequest: `${PROBLEM_BASE}/invalid-request`,
  malformedJson: `${PROBLEM_BASE}/malformed-json`,
  unauthorized: `${PROBLEM_BASE}/unauthorized`,
  forbidden: `${PROBLEM_BASE}/tenant-not-configured`,
  tooManyAuthFailures: `${PROBLEM_BASE}/too-many-auth-failures`,
  notFound: `${PROBLEM_BASE}/not-found`,
  unknownJobType: `${PROBLEM_BASE}/unknown-job-type`,
  payloadTooLarge: `${PROBLEM_BASE}/payload-too-large`,
  unsupportedMediaType: `${PROBLEM_BASE}/unsupported-media-type`,
  methodNotAllowed: `${PROBLEM_BASE}/method-not-allowed`,
  unprocessable: `${PROBLEM_BASE}/unprocessable`,
  leaseConflict: `${PROBLEM_BASE}/lease-conflict`,
  unavailable: `${PROBLEM_BASE}/service-unavailable`,
  internal: `${PROBLEM_BASE}/internal`,
} as const;

export type FieldError = { path: string; message: string };

export type ProblemStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export function problemBody(status: ProblemStatus, type: string, title: string, detail?: string, errors?: FieldError[]): ProblemDetails {
  return { type, title, status, ...(detail !== undefined ? { detail } : {}), ...(errors && errors.length > 0 ? { errors } : {}) };
}

/** A problem+json response (RFC 9457). */
export function problem(
  status: ProblemStatus,
  type: string,
  title: string,
  opts: { detail?: string; errors?: FieldError[]; headers?: Record<string, string> } = {},
): Response {
  return new Response(JSON.stringify(problemBody(status, type, title, opts.detail, opts.errors)), {
    status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...opts.headers },
  });
}

/** Zod-style issues → `errors: [{ path, message }]` with dotted paths (`jobs.3.type`). */
export function fieldErrors(issues: readonly { path: readonly PropertyKey[]; message: string }[], prefix: readonly PropertyKey[] = []): FieldError[] {
  return issues.map((i) => ({ path: [...prefix, ...i.path].map(String).join('.') || '(body)', message: i.message }));
}

export function invalidRequest(errors: FieldError[], detail = 'the request body does not match the schema'): Response {
  return problem(400, PROBLEM.invalidRequest, 'Invalid request', { detail, errors });
}

export function unavailable(detail: string, retryAfterS = 1): Response {
  return problem(503, PROBLEM.unavailable, 'Service unavailable', { detail, headers: { 'retry-after': String(retryAfterS) } });
}

/** Retry-After in whole seconds, rounded up (CONTRACT §3). */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(0, Math.ceil(ms / 1000)));
}

export type { Context };
