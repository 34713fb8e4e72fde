import { PROBLEM_BASE, type ProblemDetails } from '@janus/contracts';
import type { FieldError } from '@janus/policy';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const PROBLEM = {
  unauthorized: `${PROBLEM_BASE}/unauthorized`,
  malformedJson: `${PROBLEM_BASE}/malformed-json`,
  invalidRequest: `${PROBLEM_BASE}/invalid-request`,
  unsupportedMediaType: `${PROBLEM_BASE}/unsupported-media-type`,
  payloadTooLarge: `${PROBLEM_BASE}/payload-too-large`,
  notFound: `${PROBLEM_BASE}/not-found`,
  invalidPolicy: `${PROBLEM_BASE}/invalid-policy`,
  preconditionFailed: `${PROBLEM_BASE}/precondition-failed`,
  methodNotAllowed: `${PROBLEM_BASE}/method-not-allowed`,
  unavailable: `${PROBLEM_BASE}/service-unavailable`,
  internal: `${PROBLEM_BASE}/internal`,
} as const;

export type ProblemStatus = 400 | 401 | 404 | 405 | 412 | 413 | 415 | 422 | 500 | 503;

/** An RFC 9457 problem+json response; `extra` adds members (e.g. `currentVersion`). */
export function problem(
  status: ProblemStatus,
  type: string,
  title: string,
  opts: { detail?: string; errors?: FieldError[]; headers?: Record<string, string>; extra?: Record<string, unknown> } = {},
): Response {
  const body: ProblemDetails & Record<string, unknown> = {
    type,
    title,
    status,
    ...(opts.detail !== undefined ? { detail: opts.detail } : {}),
    ...(opts.errors && opts.errors.length > 0 ? { errors: opts.errors } : {}),
    ...opts.extra,
  };
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...opts.headers } });
}

export const notFound = (detail: string) => problem(404, PROBLEM.notFound, 'Not found', { detail });

export const invalidPolicy = (errors: FieldError[]) =>
  problem(422, PROBLEM.invalidPolicy, 'Invalid policy', { detail: `${errors.length} problem(s); the running policy is unchanged`, errors });

export const preconditionFailed = (currentVersion: number, detail: string) =>
  problem(412, PROBLEM.preconditionFailed, 'Precondition failed', {
    detail,
    extra: { currentVersion },
    headers: { etag: `"${currentVersion}"` },
  });
