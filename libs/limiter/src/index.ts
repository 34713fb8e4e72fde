export { compilePolicy, amountFor, estimateFor, exceedsCapacity, priorityShareOf, shareCapacity } from './policy.js';
export type { CompiledPolicy, CompiledJobType, LimitSpec, RateLimitSpec, WindowSpec, GuardSpec, AttemptsSpec, ConcurrencySpec, BudgetSpec, CreditsSpec, LimitAmount } from './policy.js';
export { ADAPTIVE, CREDITS } from './codes.js';
export { Credits, CreditsRelay, creditLedgerMessage, CREDITS_RELAY_GROUP, parseOutboxFields, topUpDigest, topUpEntryId, type CreditsRelayOptions, type OutboxItem } from './credits.js';
export { Limiter, MAX_BATCH } from './limiter.js';
export type { LimiterOptions } from './limiter.js';
export { Keys, isFailOpenLeaseId, limitId, type IdempotencyKind } from './keys.js';
export { JanusError, NotAdopted, NotReplicated, StoreUnavailable, StateLost, InvalidAdmission } from './errors.js';
export type * from './types.js';
