export { decideAfterFailure, retryDelayMs, type FailureDecision } from './backoff.js';
export { decodeRetryContext, encodeRetryContext, RetryContext } from './retry-context.js';
export { OutcomeProcessor, type OutcomeDisposition, type OutcomeProcessorDeps } from './outcomes.js';
export { RetryProcessor, type RetryDisposition, type RetryProcessorDeps } from './retries.js';
export { reapOnce, type ReaperDeps } from './reaper.js';
export { outcomeHorizon, type OutcomeHorizon } from './outcome-horizon.js';
export { serveLeaseExtensions } from './lease-extend.js';
export { seededRandom } from './seeded-random.js';
export { openLimiter, type LimiterOpening } from './recovery.js';
