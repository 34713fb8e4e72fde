import type { RetryPolicy } from '@janus/contracts';

/**
 * Delay before attempt `nextAttempt` (2, 3, …): exponential from `baseDelayMs`, capped at
 * `maxDelayMs`, with "equal jitter" — half fixed, half random — so that retries of jobs that failed
 * together spread out (no synchronized retry storm) but never come back sooner than half the step.
 */
export function retryDelayMs(retry: RetryPolicy, nextAttempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, nextAttempt - 2);
  const step = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** exponent);
  const half = step / 2;
  return Math.round(half + random() * half);
}

export type FailureDecision =
  | { readonly kind: 'retry'; readonly nextAttempt: number; readonly delayMs: number }
  | { readonly kind: 'dead' };

/** After attempt `attempt` failed or timed out: another attempt, or a dead letter. */
export function decideAfterFailure(retry: RetryPolicy, attempt: number, random?: () => number): FailureDecision {
  if (attempt >= retry.maxAttempts) return { kind: 'dead' };
  const nextAttempt = attempt + 1;
  return { kind: 'retry', nextAttempt, delayMs: retryDelayMs(retry, nextAttempt, random) };
}
