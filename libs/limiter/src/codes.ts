/**
 * The numbers the TypeScript side and the Lua scripts exchange, defined once: limit kinds and
 * priorities in the admit ARGV, the admit reply's group codes and faults, and the answers of
 * init, settle and extend. scripts/generate-lua.mjs turns this file into
 * src/lua/includes/codes.lua (one Lua local per entry, e.g. LIMIT_KIND_RATE = 1), which scripts
 * include with `-- @include codes`; neither side spells these numbers itself.
 *
 * Keep this file data only: the generator executes it. Every export is an integer or an object of
 * integers; its Lua name is the export name and the key in UPPER_SNAKE_CASE.
 */

/**
 * A limit's kind in the admit ARGV: a token bucket, a concurrency pool, a budget window, a sliding
 * window (rate `kind: "window"`), a dependency's guard (cooldown, effective-rate ratio and outage
 * circuit, includes/guard.lua), and a dependency's attempt counters (first attempts counted,
 * retries checked against the retry budget, includes/attempts.lua).
 */
export const LIMIT_KIND = { rate: 1, concurrency: 2, budget: 3, window: 4, guard: 5, firsts: 6, retries: 7, credits: 8 } as const;

/**
 * Prepaid credits (CONTRACT §2 Tenant "Credits"; docs/credits.md): a tenant's balance of cost units,
 * one HASH per tenant (`b` balance, `r` reserved, `@<leaseId>` the estimate that lease reserved).
 * Credits have no refill, so a job refused `credits_exhausted` is told to ask again in
 * `retryAfterMs` (a fixed minute: only a top-up can help, and a top-up wakes the waiting room).
 * A top-up's marker (one per tenant and Idempotency-Key) lives `topupMarkerTtlMs` in Redis; the
 * ledger's unique entry id in PostgreSQL is the permanent record.
 */
export const CREDITS = { retryAfterMs: 60_000, topupMarkerTtlMs: 7 * 86_400_000 } as const;

/** A cap no admission reaches: limits that are always checked but whose cap comes from their state (guard, attempts). */
export const UNBOUNDED = 2 ** 50;

/**
 * The adaptive constants (CONTRACT §2 `adaptive`; docs/dependency-protection.md explains the choice).
 * The effective rate is `ratio × declared`, ratio in parts per million (ppm):
 * - a throttled outcome multiplies it by `decreasePpm` (0.7), at most once per `decreaseGapMs`
 *   after the cooldown it set ends (the 429s of jobs admitted before the decrease carry no news);
 * - without throttling it climbs back by `increasePpmPerS` (2 % of the declared rate per second:
 *   from 10 % to 100 % in 45 s, from 70 % back in 15 s);
 * - the outage circuit opens when, over the last `circuitWindowS` seconds, at least
 *   `circuitMinCalls` outcomes were seen and at least half failed, or at the `circuitMinCalls`-th
 *   failure in a row (a sudden outage; errors and timeouts — throttling is not an outage); it stays open `circuitOpenMs`, doubling after each failed probe up to
 *   `circuitOpenMaxMs`; half-open admits one probe per `probeGapMs` until one succeeds.
 */
export const ADAPTIVE = {
  ppm: 1_000_000,
  decreasePpm: 700_000,
  decreaseGapMs: 1_000,
  increasePpmPerS: 20_000,
  circuitWindowS: 10,
  circuitMinCalls: 10,
  circuitOpenMs: 1_000,
  circuitOpenMaxMs: 5_000,
  probeGapMs: 1_000,
  /** Retry budgets count over this many one-second slots (a sliding 10 s, CONTRACT §2 `retryBudget`). */
  retryWindowS: 10,
  /** A pause without `until` (until resumed) is stored as this ms; admission then says "ask again in" pauseRecheckMs. */
  pausedForever: 9_000_000_000_000_000,
  pauseRecheckMs: 5_000,
} as const;

/** A feedback signal (feedback-n.lua). */
export const SIGNAL = { succeeded: 1, failed: 2, throttled: 3 } as const;

/** feedback-n.lua's per-dependency transition. */
export const TRANSITION = { none: 0, opened: 1, closed: 2, reopened: 3, decreased: 4 } as const;

/** A profile's priority in the admit ARGV; also the offset of its cap (capHigh, capNormal, capLow) in a limit. */
export const PRIORITY = { high: 1, normal: 2, low: 3 } as const;

/** A limit cap (or concurrency capacity) that is not limited: the pool is only tracked. */
export const NOT_LIMITED = -1;

/** What the admit reply says about one group (one AdmissionRequest). */
export const ADMIT_REPLY = {
  /** every job admitted */
  admitted: 1,
  /** followed by: failing job index (0-based), reason, retryAfterMs */
  rejected: 2,
  /** followed by: the record of the request-level idempotency key */
  duplicate: 3,
  /** followed by: n, then n × (job index 0-based, record): admitted, those jobs were idempotent replays */
  admittedWithReplays: 4,
  /** followed by: the job index (0-based, -1 for the request's key) whose key names an admission not yet confirmed, and its record */
  inProgress: 5,
} as const;

/** The admit reply's first element when the state cannot be trusted (then: recovering-until, the end of the fail-closed fallback). */
export const ADMIT_FAULT = {
  /** the epoch was missing: this call started recovery */
  stateLost: -1,
  /** recovery is under way */
  recovering: -2,
} as const;

/** init's answer: admission open (then the epoch), or closed while recovering (then when it reopens). */
export const INIT_ANSWER = { open: 1, recovering: 0 } as const;

/** The `s` of a settle or extend answer (`needKeys`: a fast claim that needs the lease's other keys, extend-n.lua). */
export const LEASE_ANSWER = { ok: 1, unknown: -1, expired: -2, alreadySettled: -3, needKeys: -4 } as const;

/** A rebuild lock operation's answer (state-lock-1). */
export const LOCK_ANSWER = { held: 1, notHeld: 0 } as const;

/** state-restore-n's answer: written, or why nothing was (the lock is not ours, or the state is open again). */
export const RESTORE_ANSWER = { ok: 1, lockLost: -1, stateOpen: -2 } as const;

/** adopt-n's answer: written (the state is trusted), or nothing written because Redis lost its state (a rebuild writes leases then). */
export const ADOPT_ANSWER = { ok: 1, stateLost: -1 } as const;

/** attach-n's answer: pools added to running leases (the state is trusted), or nothing written because Redis lost its state. */
export const ATTACH_ANSWER = { ok: 1, stateLost: -1 } as const;

/** rekind-n's answer: rate states carried to their new kind (the state is trusted), or nothing written because Redis lost its state. */
export const REKIND_ANSWER = { ok: 1, stateLost: -1 } as const;

/** state-open-3's answer. */
export const OPEN_ANSWER = { opened: 1, alreadyOpen: 2, lockLost: -1, tooEarly: -2 } as const;
