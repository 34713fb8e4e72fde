import { z } from 'zod';
import { JobStatus } from '@janus/contracts';
import type { JobCursor } from './job-view.js';

/** `created_at` to the microsecond, UTC, as the store hands it over. */
const EXACT_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const CursorBody = z.strictObject({
  // A valid time (a day 30 of February would reach PostgreSQL and fail there, a 5xx).
  t: z
    .string()
    .regex(EXACT_TIME)
    .refine((t) => {
      const ms = Date.parse(t);
      return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 23) === t.slice(0, 23);
    }),
  // Printable ASCII only: PostgreSQL refuses a NUL in text (again a 5xx).
  id: z.string().regex(/^[\x21-\x7e]{1,200}$/),
});

/**
 * The `next` of a job listing as clients see it: opaque, base64url of `{ t, id }` (the last job
 * listed). The same codec as ingress's `GET /v1/jobs` (apps/ingress/src/routes/list.ts, which may
 * switch to this one), so that both listings page alike.
 */
export function encodeJobCursor(cursor: JobCursor): string {
  return Buffer.from(JSON.stringify({ t: cursor.createdAt, id: cursor.jobId })).toString('base64url');
}

/** The cursor `encodeJobCursor` made, or undefined for anything else (never throws: it is client input). */
export function decodeJobCursor(text: string): JobCursor | undefined {
  if (!/^[A-Za-z0-9_-]{1,600}$/.test(text)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = CursorBody.safeParse(value);
  return parsed.success ? { createdAt: parsed.data.t, jobId: parsed.data.id } : undefined;
}

/** Jobs per page of a listing (producers' `GET /v1/jobs`, admins' `GET /v1/admin/jobs`): default and most. */
export const JOB_PAGE = { default: 50, max: 500 } as const;

/** A listing's `status` filter: one status or a comma-separated list; undefined when any part is not a status. */
export function parseJobStatuses(text: string): JobStatus[] | undefined {
  const out: JobStatus[] = [];
  for (const part of text.split(',')) {
    const s = JobStatus.safeParse(part);
    if (!s.success) return undefined;
    out.push(s.data);
  }
  return out;
}
