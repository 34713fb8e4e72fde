import { createHash } from 'node:crypto';
import { canonicalJson } from '@janus/policy';

/** What makes two submissions of one job "the same request" for its idempotency key. */
export interface JobContent {
  readonly type: string;
  readonly priority: string;
  readonly cost?: number | undefined;
  readonly payload?: unknown;
}

/**
 * SHA-256 (base64url) of the canonical JSON of a request's content (object keys sorted, defaults
 * applied): a key reused with another type, payload, priority or cost has another fingerprint.
 * Payloads are at most 64 levels deep (checked at the edge), so the recursion here is bounded.
 */
export function fingerprint(content: unknown): string {
  return createHash('sha256').update(canonicalJson(content)).digest('base64url');
}

export function jobContent(job: JobContent): JobContent {
  return {
    type: job.type,
    priority: job.priority,
    ...(job.cost !== undefined ? { cost: job.cost } : {}),
    ...(job.payload !== undefined ? { payload: job.payload } : {}),
  };
}
