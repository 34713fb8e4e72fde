/**
 * What a producer's idempotency key answers, as the limiter stores it (`record`): the first answer's
 * body plus `fp`, the fingerprint of the request it answered (a replay with another fingerprint is
 * `idempotency-key-reused`). Written by ingress at admission and again by a state rebuild from the
 * durable record, so both must spell it the same way: this module is the one place that does.
 */

/**
 * The `admittedAt` to put in a record written at admission: the limiter's admit script replaces it
 * with the admission's Redis time (`@<ms>`), which `parseIdempotencyRecord` turns back into ISO, so
 * that a replay answers exactly the time the first answer gave (the limiter's, not a host's clock).
 */
export const ADMITTED_AT_ADMISSION = '@';

/** The single-job 202 body; also what the key of a job (single or part of a batch) answers. */
export interface AdmittedBody {
  readonly jobId: string;
  readonly status: 'admitted';
  readonly attempt: number;
  readonly admittedAt: string;
}

/** A batch's 202 body entry for one job. */
export interface BatchEntry {
  readonly jobId: string;
  readonly status: 'admitted';
  readonly attempt: number;
}

/** The record of a job's own key. */
export function jobIdempotencyRecord(body: AdmittedBody, fingerprint: string | undefined): string {
  return JSON.stringify({ jobId: body.jobId, status: body.status, attempt: body.attempt, admittedAt: body.admittedAt, fp: fingerprint });
}

/**
 * The record of the key of a job that was first answered `queued` (mode `queue`), written when the
 * waiting room admits it: CONTRACT §3, a replay answers the first response's body — `queued` with
 * its `notBefore` — also once the job was admitted (its status is what `GET /v1/jobs/{id}` tells).
 */
export function queuedIdempotencyRecord(body: { readonly jobId: string; readonly notBefore: string }, fingerprint: string | undefined): string {
  return JSON.stringify({ jobId: body.jobId, status: 'queued', notBefore: body.notBefore, fp: fingerprint });
}

/** The record of a batch's key: its jobs in request order. */
export function batchIdempotencyRecord(jobs: readonly BatchEntry[], fingerprint: string): string {
  return JSON.stringify({ jobs: jobs.map((j) => ({ jobId: j.jobId, status: j.status, attempt: j.attempt })), fp: fingerprint });
}

/** A record's body (the first answer) and fingerprint; a record that is not an object reads as empty. */
export function parseIdempotencyRecord(record: string): { readonly body: Record<string, unknown>; readonly fp: string | undefined } {
  try {
    const value: unknown = JSON.parse(record);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { body: {}, fp: undefined };
    const { fp, ...body } = value as Record<string, unknown>;
    // `@<ms>`: stamped by the admit script (ADMITTED_AT_ADMISSION)
    if (typeof body['admittedAt'] === 'string' && /^@\d+$/.test(body['admittedAt'])) body['admittedAt'] = new Date(Number(body['admittedAt'].slice(1))).toISOString();
    return { body, fp: typeof fp === 'string' ? fp : undefined };
  } catch {
    return { body: {}, fp: undefined };
  }
}
