import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { JobMessage, type WorkerOutcome } from '@janus/contracts';
import { OUTCOME_DUPLICATE_WINDOW_MS, WORKER_INBOX_PREFIX, consumeConcurrently, messageIds, natsNames, parseMessage, publishJson } from '@janus/messaging';

/** What a handler gets besides the job: an abort signal at lease expiry and a way to extend it. */
export interface JobContext {
  /** Aborted when the lease expires (the outcome would be ignored then) or the worker stops. */
  readonly signal: AbortSignal;
  /** Asks Janus for `ms` more; resolves with the new expiry, or rejects if the lease is gone. */
  extendLease(ms: number): Promise<Date>;
}

/**
 * Return nothing for success, or `{ actualCost }` to settle a budget reservation. Throw to fail
 * (Janus retries per the job type's policy); throw a `Permanent` to fail without retries; throw a
 * `Throttled` when the dependency refused for load. Or return the dependency's `Response`: a 2xx is
 * a success, a 429 (or a 503 with `Retry-After`) a throttled failure with its `Retry-After`, any
 * other status a failure.
 */
export type JobHandler = (job: JobMessage, ctx: JobContext) => Promise<void | { actualCost?: number } | Response>;

/**
 * Where the worker logs: any pino-compatible logger (`pino()`, or a child of yours). Without one it
 * logs nothing. Levels: `info` start and stop, `warn` a failed job (handler error) or a refused
 * lease, `error` an outcome that could not be published, `debug` each job.
 */
export interface WorkerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WorkerOptions {
  /**
   * A NATS connection: `await connectWorker()` (NATS_URL, NATS_USER, NATS_PASSWORD), or your own
   * nats.js connection; as the `worker` user of infra/nats-auth.conf, with `inboxPrefix: WORKER_INBOX_PREFIX`.
   */
  nc: NatsConnection;
  namespace?: string;
  jobType: string;
  handler: JobHandler;
  /** Jobs handled at once by this worker (default 1). */
  concurrency?: number;
  /** Called for every error: a handler's (with its job), a refused lease, an outcome not published, a malformed message. */
  onError?: (error: unknown, job?: JobMessage) => void;
  logger?: WorkerLogger;
}

/** The job type has no worker consumer in this namespace: it is not in the policy (or the namespace is wrong). */
export class UnknownJobType extends Error {
  override readonly name = 'UnknownJobType';
  constructor(
    readonly jobType: string,
    readonly namespace: string,
    cause: unknown,
  ) {
    super(
      `no job type "${jobType}" in Janus namespace "${namespace}": its worker consumer does not exist. ` +
        `Add the job type to the policy (PUT /v1/job-types/${jobType}), or check the namespace (JANUS_NAMESPACE).`,
      { cause },
    );
  }
}

export interface Worker {
  /** Stops pulling, lets running handlers finish (or abort at their lease expiry), then resolves. */
  stop(): Promise<void>;
  readonly processed: number;
}

/**
 * Throw this from a handler for a failure that retrying cannot fix (a malformed payload, a refused
 * card): the outcome carries `"retryable": false` and Janus dead-letters the job at once.
 */
/** The answers to a lease extension that mean the lease is over (settled, revoked or withdrawn are `already_settled`). */
const REFUSALS = new Set(['invalid_token', 'unknown', 'expired', 'already_settled']);

/** Janus refused the lease (expired, settled, withdrawn or unknown): the job must not run. */
export class LeaseRefused extends Error {
  override readonly name = 'LeaseRefused';
}

export class Permanent extends Error {
  override readonly name = 'Permanent';
}

/**
 * Throw this when the dependency refused for load (an HTTP 429, or a 503 with `Retry-After`): the
 * outcome carries `"throttled": true` and Janus retries the job no earlier than `retryAfterMs`.
 * `dependency`: which of the job type's dependencies (default its first).
 */
export class Throttled extends Error {
  override readonly name = 'Throttled';
  readonly retryAfterMs: number | undefined;
  readonly dependency: string | undefined;

  constructor(opts: { retryAfterMs?: number; dependency?: string; message?: string } = {}) {
    super(opts.message ?? 'the dependency refused for load');
    this.retryAfterMs = opts.retryAfterMs === undefined ? undefined : Math.max(0, Math.min(Math.round(opts.retryAfterMs), 86_400_000));
    this.dependency = opts.dependency;
  }
}

/** `Retry-After` (seconds, or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** What a handler's returned `Response` means: success, or the error to report. */
function responseOutcome(res: Response): Throttled | Error | undefined {
  if (res.ok) return undefined;
  const after = retryAfterMs(res.headers.get('retry-after'));
  if (res.status === 429 || (res.status === 503 && after !== undefined)) {
    return new Throttled({ ...(after !== undefined ? { retryAfterMs: after } : {}), message: `HTTP ${res.status} from the dependency` });
  }
  return new Error(`HTTP ${res.status} from the dependency`);
}

const MAX_ERROR_BYTES = 2048;

function truncateError(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  const bytes = Buffer.from(text);
  return bytes.length <= MAX_ERROR_BYTES ? text : bytes.subarray(0, MAX_ERROR_BYTES - 3).toString('utf8').replace(/\uFFFD$/, '') + '...';
}

type ExtendReply = { readonly ok?: unknown; readonly expiresAt?: unknown; readonly reason?: unknown };

/** The new expiry Janus answered, or why not: LeaseRefused when the lease is over, another Error when the answer says nothing about it. */
function expiryOf(reply: unknown): Date {
  const body = (typeof reply === 'object' && reply !== null ? reply : {}) as ExtendReply;
  if (body.ok === true && typeof body.expiresAt === 'string') return new Date(body.expiresAt);
  const reason = typeof body.reason === 'string' ? body.reason : undefined;
  // Only these say the lease is over; the others (store_unavailable, not_recorded, …) say nothing about it.
  if (reason !== undefined && REFUSALS.has(reason)) throw new LeaseRefused(`lease refused: ${reason}`);
  throw new Error(`lease not extended: ${reason ?? 'no reason given'}`);
}

/** A claim that got no answer is asked again after this long, doubling up to CLAIM_RETRY_MAX_MS. */
const CLAIM_RETRY_MIN_MS = 200;
const CLAIM_RETRY_MAX_MS = 5_000;
/**
 * A fail-open job's claim is asked again at least this often: its lease begins when Janus adopts it
 * (within a second of Redis answering), lasting its timeout and a 2 s grace for this ask.
 */
const FAIL_OPEN_CLAIM_PAUSE_MS = 1_000;
/**
 * A claim still unanswered this close to the end of the lease in the message (at most a quarter of
 * the lease) is given up, and the job reported as not started while the lease still holds.
 */
const GIVE_UP_BEFORE_MS = 1_000;

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Most claims in one request (the scheduler's limit). */
const MAX_CLAIMS_PER_REQUEST = 1000;

/** A claim waiting for its request's answer. */
interface PendingClaim {
  readonly token: string;
  readonly resolve: (reply: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** The claim's answer, or a rejection once `deadline` (ms) has come without one. */
function beforeDeadline<T>(answer: Promise<T>, deadline: number): Promise<T> {
  if (deadline === Infinity) return answer;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer from Janus before the lease neared its end')), Math.max(0, deadline - Date.now()));
  });
  answer.catch(() => undefined); // answered after the deadline: nothing waits for it
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/**
 * Claims of the jobs delivered together leave in ONE request on `<ns>.leases.extend`,
 * `{ leaseTokens: [...], ms: 1 }` → `{ results: [...] }` (one answer per token, in order): a pull
 * delivers jobs in bursts, and a request per job would cost the scheduler and NATS a message pair
 * each. A lone claim goes as `{ leaseToken, ms: 1 }`. A scheduler that does not know the batch form
 * (it answers `malformed`) gets single requests from then on.
 */
export class ClaimBatcher {
  #queue: PendingClaim[] = [];
  #scheduled = false;
  #batches = true;

  constructor(private readonly ask: (body: object) => Promise<unknown>) {}

  claim(token: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ token, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        while (this.#queue.length > 0) void this.#send(this.#queue.splice(0, MAX_CLAIMS_PER_REQUEST));
      });
    });
  }

  async #send(batch: PendingClaim[]): Promise<void> {
    if (batch.length === 1 || !this.#batches) {
      await Promise.all(batch.map(({ token, resolve, reject }) => this.ask({ leaseToken: token, ms: 1 }).then(resolve, reject)));
      return;
    }
    let reply: unknown;
    try {
      reply = await this.ask({ leaseTokens: batch.map((c) => c.token), ms: 1 });
    } catch (error) {
      for (const c of batch) c.reject(error);
      return;
    }
    const results = (reply as { results?: unknown } | null)?.results;
    if (Array.isArray(results) && results.length === batch.length) {
      batch.forEach((c, i) => c.resolve(results[i]));
      return;
    }
    if ((reply as ExtendReply | null)?.reason === 'malformed') {
      // A scheduler from before batched claims: ask one by one, now and from now on.
      this.#batches = false;
      await this.#send(batch);
      return;
    }
    for (const c of batch) c.reject(new Error('lease not extended: unreadable answer to a batch of claims'));
  }
}

/**
 * Runs a handler for one job type. Binds to Janus's durable consumer `workers-<jobType>`, pulls,
 * calls the handler and publishes its outcome (msgID `<jobId>.<attempt>`). Workers never retry:
 * a failure is reported and Janus decides (CONTRACT §4). The message is acknowledged only after
 * the outcome was published, and the consumer never redelivers, so a crashed worker is handled by
 * lease expiry.
 */
export async function startWorker(opts: WorkerOptions): Promise<Worker> {
  const namespace = opts.namespace ?? 'janus';
  const names = natsNames(namespace);
  const js = jetstream(opts.nc);
  const log = opts.logger;
  let consumer: Consumer;
  try {
    consumer = await js.consumers.get(names.streams.jobs, names.consumers.workers(opts.jobType));
    // `get` does not ask the server: ask once, so that a missing job type fails here, by name.
    await consumer.info();
  } catch (error) {
    const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
    if (/not.?found/i.test(text)) throw new UnknownJobType(opts.jobType, namespace, error);
    if (/Permissions Violation for Subscription to "_INBOX\./.test(text)) {
      // The `worker` user of infra/nats-auth.conf may read only its own inboxes.
      throw new Error(`NATS refused this connection's reply inbox: as the worker user, connect with inboxPrefix "${WORKER_INBOX_PREFIX}" (connectWorker() does)`, { cause: error });
    }
    throw error;
  }
  const reportError = (error: unknown, job?: JobMessage) => {
    try {
      opts.onError?.(error, job);
    } catch {
      // a throwing onError must not stop the worker
    }
  };
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const stopping = new AbortController();
  let processed = 0;

  const ask = async (body: object): Promise<unknown> => (await opts.nc.request(names.subjects.leaseExtend, JSON.stringify(body), { timeout: 2_000 })).json<unknown>();
  const extendLease = async (token: string, ms: number): Promise<Date> => expiryOf(await ask({ leaseToken: token, ms }));
  const claims = new ClaimBatcher(ask);
  const claimLease = async (token: string): Promise<Date> => expiryOf(await claims.claim(token));

  async function handle(msg: JsMsg): Promise<void> {
    const parsed = parseMessage(msg, JobMessage);
    if (!parsed.success) {
      const error = new Error(`malformed job message on ${msg.subject}`);
      log?.error({ subject: msg.subject }, error.message);
      reportError(error);
      msg.term();
      return;
    }
    const job = parsed.data;
    // Claim the lease before running; only Janus's answer lets the job run. Janus refuses a lease
    // that has ended or was withdrawn (the producer was answered 503 although the message reached
    // the stream); a job no worker had taken before its lease ran out may have been given more time
    // meanwhile (it waited again), so the answer, not the message's expiresAt, decides. With no
    // answer (no scheduler reachable) or one that says nothing about the lease (Janus's store
    // unavailable) whether it may run cannot be told, so it does not run yet (fail-safe): the claim
    // is asked again until Janus answers or the lease in the message has run out (Janus then
    // writes its timed_out outcome, or lets it wait if no worker had taken it). A fail-open job
    // (admitted while Janus's Redis was unreachable) has no lease Janus knows until the scheduler
    // adopts it, with a full lease from then on: it is asked for until Janus answers, however long.
    // Given up this long before the lease in the message ends (a quarter of it at most), so that
    // the report below is dated while the lease still holds; a fail-open job is never given up.
    const leaseEnd = Date.parse(job.lease.expiresAt);
    const giveUpAt = job.failOpen === true ? Infinity : leaseEnd - Math.min(GIVE_UP_BEFORE_MS, Math.max(0, (leaseEnd - Date.parse(job.admittedAt)) / 4));
    let claimed: Date | undefined;
    for (let pause = CLAIM_RETRY_MIN_MS; claimed === undefined; pause = Math.min(pause * 2, CLAIM_RETRY_MAX_MS)) {
      try {
        // A message whose lease has passed may still be claimable (a job no worker took waits
        // again, its lease extended): it is asked for without a deadline, as before.
        claimed = await (giveUpAt > Date.now() ? beforeDeadline(claimLease(job.lease.token), giveUpAt) : claimLease(job.lease.token));
      } catch (error) {
        if (error instanceof LeaseRefused) {
          msg.ack();
          log?.warn({ jobId: job.jobId, attempt: job.attempt, reason: error.message }, 'lease refused: the job is not run');
          reportError(error, job);
          return;
        }
        const left = giveUpAt - Date.now();
        if (left <= 0 || stopping.signal.aborted) {
          // Not started, and Janus is told so while the lease still holds (JetStream dates the
          // report), so that the job is retried without charging an attempt (CONTRACT §4: a job
          // that never started keeps its attempts). Unreported (NATS down too, or the lease over
          // already), the lease expires as a timed_out attempt and the job is retried as well.
          const reportable = Date.now() < leaseEnd;
          if (reportable) {
            const notStarted: WorkerOutcome = { jobId: job.jobId, attempt: job.attempt, leaseToken: job.lease.token, outcome: 'failed', error: `not started: ${truncateError(error)}`.slice(0, 2048), started: false };
            await publishJson(js, names.subjects.outcome(job.type), notStarted, messageIds.attempt(job.jobId, job.attempt)).catch((publishError: unknown) =>
              log?.warn({ jobId: job.jobId, attempt: job.attempt, err: publishError }, 'could not report the job as not started (its lease will time out)'),
            );
          }
          msg.ack();
          log?.warn({ jobId: job.jobId, attempt: job.attempt, err: error }, `lease not claimed before it ran out (no answer from Janus): the job is not run${reportable ? ', reported as not started' : ''}`);
          reportError(error, job);
          return;
        }
        log?.debug({ jobId: job.jobId, attempt: job.attempt, err: error }, 'lease claim not answered; asking again');
        await sleep(Math.min(pause, left, job.failOpen === true ? FAIL_OPEN_CLAIM_PAUSE_MS : Infinity), stopping.signal);
      }
    }
    const expiry = new AbortController();
    let expiresAt = claimed.getTime();
    // The handler sees the lease as Janus answered the claim: a job that waited for a worker has a
    // later expiry than its message says (it starts with a whole timeoutMs from the claim).
    const started: typeof job = { ...job, lease: { ...job.lease, expiresAt: claimed.toISOString() } };
    const armExpiry = () => setTimeout(() => expiry.abort(new Error('lease expired')), Math.max(0, expiresAt - Date.now()));
    let timer = armExpiry();
    const signal = AbortSignal.any([expiry.signal, stopping.signal]);
    const ctx: JobContext = {
      signal,
      extendLease: async (ms) => {
        const until = await extendLease(job.lease.token, ms);
        expiresAt = until.getTime();
        clearTimeout(timer);
        timer = armExpiry();
        return until;
      },
    };
    let outcome: WorkerOutcome;
    log?.debug({ jobId: job.jobId, attempt: job.attempt, type: job.type }, 'job started');
    try {
      const result = await opts.handler(started, ctx);
      if (result instanceof Response) {
        const failure = responseOutcome(result);
        if (failure !== undefined) throw failure;
        outcome = { jobId: job.jobId, attempt: job.attempt, leaseToken: job.lease.token, outcome: 'succeeded' };
      } else {
        outcome = { jobId: job.jobId, attempt: job.attempt, leaseToken: job.lease.token, outcome: 'succeeded', ...(result?.actualCost !== undefined ? { actualCost: result.actualCost } : {}) };
      }
    } catch (error) {
      log?.warn({ jobId: job.jobId, attempt: job.attempt, type: job.type, err: error }, error instanceof Throttled ? 'job throttled by its dependency' : 'job failed');
      reportError(error, job);
      outcome = {
        jobId: job.jobId,
        attempt: job.attempt,
        leaseToken: job.lease.token,
        outcome: 'failed',
        error: truncateError(error),
        ...(error instanceof Permanent ? { retryable: false } : {}),
        ...(error instanceof Throttled
          ? { throttled: true, ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}), ...(error.dependency !== undefined ? { dependency: error.dependency } : {}) }
          : {}),
      };
    } finally {
      clearTimeout(timer);
    }
    try {
      const stored = await publishJson(js, names.subjects.outcome(job.type), outcome, messageIds.attempt(job.jobId, job.attempt));
      if (stored.duplicate) {
        // JetStream already held a message under this attempt's msgID, published within its short
        // duplicate window: a forged report can squat the msgID so (CONTRACT §6.4: it must change
        // nothing). Once the window has passed, this report again: if the one held was this very
        // report (our own earlier try), the scheduler applies it once all the same.
        await new Promise((r) => setTimeout(r, OUTCOME_DUPLICATE_WINDOW_MS + 50));
        await publishJson(js, names.subjects.outcome(job.type), outcome, messageIds.attempt(job.jobId, job.attempt));
      }
    } catch (error) {
      // The lease will expire and Janus will record a timed_out outcome: nothing is lost.
      log?.error({ jobId: job.jobId, attempt: job.attempt, err: error }, 'outcome not published (the lease will time out and Janus retries)');
      reportError(error, job);
    }
    msg.ack();
    processed++;
  }

  // No prefetch: the workers consumer never redelivers, so a job pulled is a job taken — one that
  // waited in this process's buffer while the handlers were busy would have its lease run out as a
  // timed_out attempt (CONTRACT §4: a job no worker took is not an attempt), and be lost on stop().
  const loop = await consumeConcurrently(consumer, { concurrency, handle, onError: (error) => reportError(error), prefetch: false });
  log?.info({ jobType: opts.jobType, namespace, concurrency }, 'worker started');

  return {
    get processed() {
      return processed;
    },
    async stop() {
      // Stop pulling, let the handlers that run finish and report (each still bounded by its lease),
      // then abort whatever is left.
      await loop.stop();
      stopping.abort();
      log?.info({ jobType: opts.jobType, processed }, 'worker stopped');
    },
  };
}
