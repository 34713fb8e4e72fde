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

/**
 * At most this many attempts of a job go uncharged (a throttled failure is not the job's fault, so
 * it does not count toward `maxAttempts`); beyond that such failures are charged like any other, so
 * that a dependency that refuses for ever cannot keep a job retrying for ever.
 */
export const MAX_UNCHARGED_ATTEMPTS = 20;

/**
 * After attempt `attempt` failed or timed out: another attempt, or a dead letter. `uncharged`: how
 * many of the attempts up to and including this one are not charged (capped at
 * MAX_UNCHARGED_ATTEMPTS). The job is dead once its CHARGED attempts reach `maxAttempts`, and the
 * backoff grows with those only (a job throttled again and again keeps the first step); the attempt
 * number still goes up by one, as it names the next attempt's messages.
 */
export function decideAfterFailure(retry: RetryPolicy, attempt: number, random?: () => number, uncharged = 0): FailureDecision {
  const charged = attempt - Math.min(uncharged, MAX_UNCHARGED_ATTEMPTS);
  if (charged >= retry.maxAttempts) return { kind: 'dead' };
  return { kind: 'retry', nextAttempt: attempt + 1, delayMs: retryDelayMs(retry, charged + 1, random) };
}
