import { PROBLEM_BASE, type FieldError, type ProblemDetails } from '@janus/contracts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Problem types every Janus HTTP edge uses; apps add their own next to these. */
export const COMMON_PROBLEMS = {
  invalidRequest: `${PROBLEM_BASE}/invalid-request`,
  malformedJson: `${PROBLEM_BASE}/malformed-json`,
  unauthorized: `${PROBLEM_BASE}/unauthorized`,
  /** 429: too many failed authentications from one address (AuthFailureThrottle). */
  tooManyAuthFailures: `${PROBLEM_BASE}/too-many-auth-failures`,
  notFound: `${PROBLEM_BASE}/not-found`,
  methodNotAllowed: `${PROBLEM_BASE}/method-not-allowed`,
  payloadTooLarge: `${PROBLEM_BASE}/payload-too-large`,
  unsupportedMediaType: `${PROBLEM_BASE}/unsupported-media-type`,
  unavailable: `${PROBLEM_BASE}/service-unavailable`,
  internal: `${PROBLEM_BASE}/internal`,
} as const;

export type { FieldError };

/**
 * An RFC 9457 problem+json response; `extra` adds members (e.g. `currentVersion`). `detail` is
 * required (CONTRACT §3): every answer says in words what was wrong, `errors` names the fields —
 * an empty list when no field is at fault (a missing key, an unknown job), so that a client can
 * always read it.
 */
export function problem(
  status: number,
  type: string,
  title: string,
  opts: { detail: string; errors?: FieldError[]; headers?: Record<string, string>; extra?: Record<string, unknown> },
): Response {
  const body: ProblemDetails & Record<string, unknown> = {
    type,
    title,
    status,
    detail: opts.detail,
    errors: opts.errors ?? [],
    ...opts.extra,
  };
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...opts.headers } });
}

/** 400 naming every bad field; the default `detail` lists them (`label: expected string …`). */
export function invalidRequest(errors: FieldError[], detail = fieldErrorsDetail(errors)): Response {
  return problem(400, COMMON_PROBLEMS.invalidRequest, 'Invalid request', { detail, errors });
}

/** A problem's `detail` made of its field errors: `amount: Too small …; Idempotency-Key: required …`. */
export function fieldErrorsDetail(errors: readonly FieldError[]): string {
  if (errors.length === 0) return 'the request does not match the schema';
  return errors.map((e) => `${e.path}: ${e.message}`).join('; ');
}
