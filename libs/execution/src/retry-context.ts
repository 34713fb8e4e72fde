import { z } from 'zod';
import { Name, Priority } from '@janus/contracts';
import { jsonWithRaw } from '@janus/messaging';

/**
 * What a retry needs of the original job, kept with its lease in Redis (the outcome event carries
 * only jobId and attempt): who, which type, the original priority, the payload, and how many
 * attempts so far were not charged.
 */
export const RetryContext = z.object({
  tenant: Name,
  type: Name,
  priority: Priority,
  payload: z.json().optional(),
  /** The producer's cost override, which applies to every attempt. */
  cost: z.number().int().min(0).optional(),
  createdAt: z.string().optional(),
  /**
   * How many attempts before this one were not charged to `maxAttempts` (see `RetryMessage`): kept
   * with the lease so that this attempt's outcome adds to it. Absent: 0.
   */
  uncharged: z.number().int().min(0).max(1000).optional(),
});
export type RetryContext = z.infer<typeof RetryContext>;

/**
 * The context as stored with the lease. `payloadJson`, when given, is the payload as JSON text
 * already (the ingress serializes a payload once) and stands for `ctx.payload`, which is then unset.
 */
export function encodeRetryContext(ctx: RetryContext, payloadJson?: string): string {
  if (payloadJson === undefined) return JSON.stringify(ctx);
  if (ctx.payload !== undefined) throw new Error('encodeRetryContext: the payload is given twice');
  return jsonWithRaw(ctx, 'payload', payloadJson);
}

export function decodeRetryContext(raw: string | undefined): RetryContext | undefined {
  if (raw === undefined || raw === '') return undefined;
  try {
    const parsed = RetryContext.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
