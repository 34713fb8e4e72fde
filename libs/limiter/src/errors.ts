/**
 * Faults of the limiter. Decisions (admitted, rejected, duplicate…) are typed results and never
 * thrown; only faults are. Apps map `status` to HTTP and `retryable` to their retry logic.
 */
export class JanusError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly retryable: boolean,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'JanusError';
  }
}

/** Redis could not be reached or did not answer in time. Callers apply each dependency's failMode. */
export class StoreUnavailable extends JanusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_unavailable', 503, true, message, options);
    this.name = 'StoreUnavailable';
  }
}

/**
 * A write script ran, but fewer replicas than JANUS_REDIS_WAIT_REPLICAS acknowledged it in time (or,
 * with `reply` undefined, it was not run because another write just missed): a failover could lose
 * it, so nothing may act on it. Redis itself answers, so the limits are known: this fails closed
 * even for a fail-open dependency. `reply` is what the script answered (the limiter undoes an
 * admission it carries: src/limiter.ts).
 */
export class NotReplicated extends StoreUnavailable {
  constructor(
    message: string,
    readonly reply: unknown,
  ) {
    super(message);
    this.name = 'NotReplicated';
  }
}

/**
 * A fail-open admission's lease (admitted while Redis could not be reached) whose record Janus has
 * not written yet: the retry-scheduler adopts it from the durable record within seconds of Redis
 * answering again (Limiter.adoptLeases). Until then nothing can be said about it, so a claim,
 * extension or outcome with its token is asked again later (a store fault), never refused.
 */
export class NotAdopted extends StoreUnavailable {
  constructor(readonly leaseId: string) {
    super(`lease ${leaseId} was admitted while Redis was unreachable (fail-open) and is not adopted yet; ask again`);
    this.name = 'NotAdopted';
  }
}

/**
 * Redis lost the limiter's state (restart without persistence, flush). Admission fails closed until
 * the state is rebuilt from the durable record (seconds), or, when it cannot be, until
 * `recoveringUntil` (Redis ms; 0 when not set yet), when every lease granted before the loss has expired.
 */
export class StateLost extends JanusError {
  constructor(readonly recoveringUntil: number) {
    super('state_lost', 503, true, 'limiter state lost; admission is closed while it is rebuilt');
    this.name = 'StateLost';
  }
}

/** A request the limiter cannot take at all (caller bug): e.g. an empty or oversized batch. */
export class InvalidAdmission extends JanusError {
  constructor(message: string) {
    super('invalid_admission', 400, false, message);
    this.name = 'InvalidAdmission';
  }
}
