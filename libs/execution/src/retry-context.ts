import { z } from 'zod';
import { Name, Priority } from '@janus/contracts';

/**
 * What a retry needs of the original job, kept with its lease in Redis (the outcome event carries
 * only jobId and attempt): who, which type, the original priority and the payload.
 */
export const RetryContext = z.object({
  tenant: Name,
  type: Name,
  priority: Priority,
  payload: z.json().optional(),
  /** The producer's cost override, which applies to every attempt. */
  cost: z.number().int().min(0).optional(),
  createdAt: z.string().optional(),
});
export type RetryContext = z.infer<typeof RetryContext>;

export function encodeRetryContext(ctx: RetryContext): string {
  return JSON.stringify(ctx);
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
