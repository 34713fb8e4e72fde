import { JanusClientError } from './errors.js';
import type {
  AdmittedBody,
  BatchAdmittedBody,
  BatchRejectedBody,
  CapacityLimit,
  FieldError,
  JobInput,
  JobPage,
  JobStatus,
  JobView,
  ListQuery,
  Problem,
  QueuedBody,
  RejectReason,
  RejectedBody,
  ReplayBody,
  SubmitMode,
  Usage,
} from './types.js';

/** The subset of the global `fetch` the client uses (so a test double or an instrumented fetch fits). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface JanusClientOptions {
  /** The ingress, e.g. `http://127.0.0.1:8080` (a path prefix in front of `/v1` is kept). */
  readonly baseUrl: string | URL;
  /** The tenant's API key (`Authorization: Bearer <key>`). */
  readonly apiKey: string;
  /** Defaults to the global `fetch` (Node ≥ 20, browsers, Deno, Bun). */
  readonly fetch?: FetchLike;
  /** Per request, until the whole answer is read. Default 10 000 ms. */
  readonly timeoutMs?: number;
}

export interface CallOptions {
  /** Aborts the call (a `JanusClientError` with code `aborted`). */
  readonly signal?: AbortSignal;
}

export interface SubmitOptions extends CallOptions {
  /** Sent as the `Idempotency-Key` header (the job's own `idempotencyKey` field, if any, must equal it). */
  readonly idempotencyKey?: string;
  /** `queue`: a job that cannot be admitted now waits in Janus's room instead of being rejected. */
  readonly mode?: SubmitMode;
}

export interface BatchOptions extends CallOptions {
  /** The batch's own key: a replay answers the whole first batch answer. */
  readonly idempotencyKey?: string;
}

export interface SubmitWithRetryOptions extends SubmitOptions {
  /** How long to keep trying, from the first attempt. A wait that would end after it is not begun. */
  readonly maxWaitMs: number;
  /** A number in [0, 1) (default Math.random): spreads the retries of producers told the same time. */
  readonly random?: () => number;
}

/** A limiter's `no` (429): nothing was admitted and nothing consumed. */
export interface RejectedResult {
  readonly kind: 'rejected';
  readonly reason: RejectReason;
  /** The earliest time (ms from the answer) at which the same request could be admitted. */
  readonly retryAfterMs: number;
  readonly body: RejectedBody;
}

/** 422 `exceeds-capacity`: no wait can admit it (a cost or batch larger than a limit's capacity). */
export interface ExceedsCapacityResult {
  readonly kind: 'exceeds_capacity';
  /** The limit it exceeds, when the problem names it. */
  readonly limit: CapacityLimit | undefined;
  /** In a batch: the job from which on the batch exceeds it. */
  readonly index: number | undefined;
  readonly problem: Problem;
}

/**
 * The request is wrong and sending it again will not help: 400 (schema, idempotency header), 404
 * `unknown-job-type`, 413 (payload over the job type's limit), 415, 422 (e.g.
 * `idempotency-key-reused`). `errors` names each bad field.
 */
export interface InvalidResult {
  readonly kind: 'invalid';
  readonly status: number;
  readonly errors: readonly FieldError[];
  readonly problem: Problem;
}

/**
 * 409 `idempotency-key-in-progress` (docs/api.md, an extension of the contract): a request with the
 * same key is still being admitted; nothing was admitted for this one. Send it again shortly.
 */
export interface InProgressResult {
  readonly kind: 'in_progress';
  readonly retryAfterMs: number;
  readonly problem: Problem;
}

/** 503: a store is unreachable, or state is being recovered; nothing admitted, nothing consumed. */
export interface UnavailableResult {
  readonly kind: 'unavailable';
  /** From `Retry-After` (1 s when absent). */
  readonly retryAfterMs: number;
  readonly problem: Problem;
}

export type SubmitResult =
  /** 202, or 200 with `body.duplicate` for a replay of an admitted request. */
  | { readonly kind: 'admitted'; readonly body: AdmittedBody }
  /** Mode `queue`: 202 waiting in the room (or 200 with `body.duplicate` while the first one waits). */
  | { readonly kind: 'queued'; readonly body: QueuedBody }
  | RejectedResult
  | ExceedsCapacityResult
  | InvalidResult
  | InProgressResult
  | UnavailableResult;

export type BatchResult =
  /** 202 every job admitted, in request order; 200 when all were duplicates. */
  | { readonly kind: 'admitted'; readonly body: BatchAdmittedBody }
  /** 429 naming the first job that could not be admitted; no job of the batch was admitted. */
  | { readonly kind: 'rejected'; readonly index: number; readonly reason: RejectReason; readonly retryAfterMs: number; readonly body: BatchRejectedBody }
  | ExceedsCapacityResult
  | InvalidResult
  | InProgressResult
  | UnavailableResult;

export type CancelResult =
  /** 204: it will not run. */
  | { readonly kind: 'cancelled' }
  /** 404: no such job for this tenant. */
  | { readonly kind: 'not_found'; readonly problem: Problem }
  /** 409: admitted, running or finished (or being admitted right now). */
  | { readonly kind: 'not_cancellable'; readonly problem: Problem }
  | UnavailableResult;

export type ReplayResult =
  /** 202: a new attempt waits in the room and is admitted like any retry (every limit applies). */
  | { readonly kind: 'replayed'; readonly body: ReplayBody }
  /** 404: no such job for this tenant. */
  | { readonly kind: 'not_found'; readonly problem: Problem }
  /** 409: not dead (`jobStatus` says what it is; e.g. replayed already), or its job type is gone from the policy. */
  | { readonly kind: 'not_replayable'; readonly jobStatus: JobStatus | undefined; readonly problem: Problem }
  | UnavailableResult;

const PROBLEMS = 'https://janus.dev/problems';
const PROBLEM_TYPE = {
  unknownJobType: `${PROBLEMS}/unknown-job-type`,
  exceedsCapacity: `${PROBLEMS}/exceeds-capacity`,
  idempotencyKeyInProgress: `${PROBLEMS}/idempotency-key-in-progress`,
} as const;

/** What Janus answers for a job id it could not have issued; used when the id cannot even be sent. */
const NOT_FOUND: Problem = { type: `${PROBLEMS}/not-found`, title: 'Job not found', status: 404, detail: 'no job with this id for this tenant' };

const DEFAULT_TIMEOUT_MS = 10_000;
/** When a 503 or 409 in-progress carries no usable `Retry-After` (Janus always sends one; a proxy may not). */
const DEFAULT_RETRY_AFTER_MS = 1_000;

/** An answer, read whole. `body` is the parsed JSON, or undefined when empty or not JSON. */
interface Answer {
  readonly status: number;
  readonly statusText: string;
  readonly headers: Headers;
  readonly body: unknown;
  readonly text: string;
}

type Json = Record<string, unknown>;

/** What an HTTP header value can carry (a ByteString). */
const LATIN1 = /^[\u0020-\u00ff]*$/;

/**
 * A typed producer client for the Janus ingress (CONTRACT §3). Decisions come back as tagged unions
 * (`kind`); only faults — no answer, a timeout, a status no decision explains (401, 403, 5xx other
 * than 503) — throw a `JanusClientError`.
 */
export class JanusClient {
  readonly #base: string;
  readonly #authorization: string;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;

  constructor(options: JanusClientOptions) {
    // A trailing slash would make `${base}/v1/...` hold `//`, which is another path on most servers.
    this.#base = String(options.baseUrl).replace(/\/+$/, '');
    // Fail at construction, not as a "network" fault on the first call.
    if (!URL.canParse(this.#base)) throw new TypeError(`JanusClient: baseUrl is not an absolute URL: ${String(options.baseUrl)}`);
    if (options.timeoutMs !== undefined && !(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) throw new RangeError('JanusClient: timeoutMs must be a positive number');
    this.#authorization = `Bearer ${options.apiKey}`;
    // Looked up per call rather than bound once, so a global fetch patched later (instrumentation,
    // test interceptors) is honoured.
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** `POST /v1/jobs`: asks Janus to admit one job. */
  async submit(job: JobInput, options: SubmitOptions = {}): Promise<SubmitResult> {
    // A header carries Latin-1 only: a key beyond it (any printable character is a key) goes in the
    // body field, which means the same (CONTRACT §3).
    const inBody = options.idempotencyKey !== undefined && !LATIN1.test(options.idempotencyKey);
    const withKey = inBody ? { ...job, idempotencyKey: options.idempotencyKey } : job;
    const body = options.mode === undefined ? withKey : { ...withKey, mode: options.mode };
    const answer = await this.#call('POST', '/v1/jobs', { body, idempotencyKey: inBody ? undefined : options.idempotencyKey, signal: options.signal });
    if (answer.status === 200 || answer.status === 202) {
      const b = asObject(answer.body);
      if (b?.status === 'admitted' && typeof b.jobId === 'string') return { kind: 'admitted', body: b as unknown as AdmittedBody };
      if (b?.status === 'queued' && typeof b.jobId === 'string') return { kind: 'queued', body: b as unknown as QueuedBody };
      throw protocolFault(answer, 'an admitted or queued job');
    }
    if (answer.status === 429) {
      const rejected = rejectedBody(answer.body);
      if (rejected) return { kind: 'rejected', reason: rejected.reason, retryAfterMs: rejected.retryAfterMs, body: rejected };
    }
    return this.#decision(answer);
  }

  /** `POST /v1/jobs/batch`: 1 to 1000 jobs, all or nothing. */
  async submitBatch(jobs: readonly JobInput[], options: BatchOptions = {}): Promise<BatchResult> {
    if (options.idempotencyKey !== undefined && !LATIN1.test(options.idempotencyKey)) {
      throw new TypeError("JanusClient: a batch's idempotency key travels in the Idempotency-Key header, which carries Latin-1 characters only (a job's own key may be any printable characters)");
    }
    const answer = await this.#call('POST', '/v1/jobs/batch', { body: { jobs }, idempotencyKey: options.idempotencyKey, signal: options.signal });
    if (answer.status === 200 || answer.status === 202) {
      const b = asObject(answer.body);
      if (b && Array.isArray(b.jobs)) return { kind: 'admitted', body: b as unknown as BatchAdmittedBody };
      throw protocolFault(answer, 'an admitted batch');
    }
    if (answer.status === 429) {
      const rejected = rejectedBody(answer.body);
      const index = asObject(answer.body)?.index;
      if (rejected && typeof index === 'number') {
        const body: BatchRejectedBody = { ...rejected, index };
        return { kind: 'rejected', index, reason: body.reason, retryAfterMs: body.retryAfterMs, body };
      }
    }
    return this.#decision(answer);
  }

  /**
   * `GET /v1/jobs/{jobId}`: the tenant's own job, or undefined when there is none (or not yet: the
   * view is eventually consistent, typically within a second of an event).
   */
  async get(jobId: string, options: CallOptions = {}): Promise<JobView | undefined> {
    const path = jobPath(jobId);
    if (path === undefined) return undefined;
    const answer = await this.#call('GET', path, { signal: options.signal });
    if (answer.status === 404) return undefined;
    if (answer.status === 200) {
      const b = asObject(answer.body);
      if (b && typeof b.jobId === 'string' && Array.isArray(b.attempts)) return b as unknown as JobView;
      throw protocolFault(answer, 'a job');
    }
    throw httpFault(answer);
  }

  /** `DELETE /v1/jobs/{jobId}`: cancels the tenant's job while it waits (queued, or a retry not yet admitted). */
  async cancel(jobId: string, options: CallOptions = {}): Promise<CancelResult> {
    // Not expressible as one path segment: Janus could not have issued it, so it is no job of ours.
    const path = jobPath(jobId);
    if (path === undefined) return { kind: 'not_found', problem: { ...NOT_FOUND } };
    const answer = await this.#call('DELETE', path, { signal: options.signal });
    switch (answer.status) {
      case 204:
        return { kind: 'cancelled' };
      case 404:
        return { kind: 'not_found', problem: problemOf(answer) };
      case 409:
        return { kind: 'not_cancellable', problem: problemOf(answer) };
      case 503:
        return unavailable(answer);
      default:
        throw httpFault(answer);
    }
  }

  /**
   * `GET /v1/jobs` (an extension of the contract, docs/api.md): a page of the tenant's jobs, newest
   * first, each as `get` shows it. A bad filter (status, type, limit 1–500, a cursor Janus did not
   * issue) is a fault: `JanusClientError` with status 400 and the problem's `errors`.
   */
  async list(query: ListQuery = {}, options: CallOptions = {}): Promise<JobPage> {
    const params = new URLSearchParams();
    if (query.status !== undefined) params.set('status', typeof query.status === 'string' ? query.status : query.status.join(','));
    if (query.type !== undefined) params.set('type', query.type);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.cursor !== undefined) params.set('cursor', query.cursor);
    const search = params.toString() === '' ? '' : `?${params.toString()}`;
    const answer = await this.#call('GET', `/v1/jobs${search}`, { signal: options.signal });
    if (answer.status !== 200) throw httpFault(answer);
    const b = asObject(answer.body);
    if (b && Array.isArray(b.jobs) && (b.next === null || typeof b.next === 'string')) return b as unknown as JobPage;
    throw protocolFault(answer, 'a page of jobs');
  }

  /** Every job `list` finds, page after page (`limit` is the page size). */
  async *listAll(query: Omit<ListQuery, 'cursor'> = {}, options: CallOptions = {}): AsyncGenerator<JobView, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.list(cursor === undefined ? query : { ...query, cursor }, options);
      yield* page.jobs;
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * `POST /v1/jobs/{jobId}/replay` (an extension of the contract, docs/api.md): a dead job gets a
   * new attempt (and its job type's `maxAttempts` afresh), admitted like any retry.
   */
  async replay(jobId: string, options: CallOptions = {}): Promise<ReplayResult> {
    const path = jobPath(jobId);
    if (path === undefined) return { kind: 'not_found', problem: { ...NOT_FOUND } };
    const answer = await this.#call('POST', `${path}/replay`, { signal: options.signal });
    switch (answer.status) {
      case 202: {
        const b = asObject(answer.body);
        if (b && typeof b.jobId === 'string' && typeof b.attempt === 'number') return { kind: 'replayed', body: b as unknown as ReplayBody };
        throw protocolFault(answer, 'a replayed job');
      }
      case 404:
        return { kind: 'not_found', problem: problemOf(answer) };
      case 409: {
        const jobStatus = asObject(answer.body)?.jobStatus;
        return { kind: 'not_replayable', jobStatus: typeof jobStatus === 'string' ? (jobStatus as JobStatus) : undefined, problem: problemOf(answer) };
      }
      case 503:
        return unavailable(answer);
      default:
        throw httpFault(answer);
    }
  }

  /** `GET /v1/usage`: the caller's tenant — budget, in-flight jobs per dependency, queued jobs. */
  async usage(options: CallOptions = {}): Promise<Usage> {
    const answer = await this.#call('GET', '/v1/usage', { signal: options.signal });
    if (answer.status !== 200) throw httpFault(answer);
    const b = asObject(answer.body);
    if (b && typeof b.tenant === 'string' && typeof b.queued === 'number') return b as unknown as Usage;
    throw protocolFault(answer, 'usage');
  }

  /**
   * `submit`, sent again while Janus answers "not now" — 429 `rejected`, 503 `unavailable`, 409
   * `in_progress` — after the `retryAfterMs` it names plus a little jitter, until the job is
   * admitted (or queued) or `maxWaitMs` is up. Returns the last result: a caller still sees why it
   * was not admitted. Other decisions return at once (sending them again cannot help), and faults
   * throw as from `submit`.
   *
   * Sending again is safe without an idempotency key: every answer it retries guarantees nothing
   * was admitted. With a key, each try carries it.
   */
  async submitWithRetry(job: JobInput, options: SubmitWithRetryOptions): Promise<SubmitResult> {
    const deadline = Date.now() + options.maxWaitMs;
    const random = options.random ?? Math.random;
    for (;;) {
      const result = await this.submit(job, options);
      if (result.kind !== 'rejected' && result.kind !== 'unavailable' && result.kind !== 'in_progress') return result;
      const waitMs = jittered(result.retryAfterMs, random());
      // Janus's retryAfterMs is the earliest the request could pass: a wait that cannot end before
      // the deadline could not end in an admission either.
      if (Date.now() + waitMs > deadline) return result;
      await sleep(waitMs, options.signal);
    }
  }

  /** The mapping shared by submit and submitBatch once their success and 429 shapes are ruled out. */
  #decision(answer: Answer): ExceedsCapacityResult | InvalidResult | InProgressResult | UnavailableResult {
    const problem = problemOf(answer);
    switch (answer.status) {
      case 400:
      case 413:
      case 415:
        return invalid(answer.status, problem);
      case 404:
        // Only an unknown job type is the request's fault; any other 404 (no such route) means the
        // client is pointed at the wrong place.
        if (problem.type === PROBLEM_TYPE.unknownJobType) return invalid(404, problem);
        break;
      case 409:
        if (problem.type === PROBLEM_TYPE.idempotencyKeyInProgress) {
          return { kind: 'in_progress', retryAfterMs: retryAfter(answer.headers) ?? DEFAULT_RETRY_AFTER_MS, problem };
        }
        break;
      case 422:
        if (problem.type === PROBLEM_TYPE.exceedsCapacity) {
          const raw = asObject(answer.body);
          const index = raw?.index;
          return { kind: 'exceeds_capacity', limit: capacityLimit(raw?.limit), index: typeof index === 'number' ? index : undefined, problem };
        }
        return invalid(422, problem);
      case 503:
        return unavailable(answer);
    }
    throw httpFault(answer);
  }

  async #call(method: string, path: string, opts: { body?: unknown; idempotencyKey?: string | undefined; signal?: AbortSignal | undefined }): Promise<Answer> {
    // Built outside the try: a key fetch cannot send (not Latin-1) is the caller's bug, not a network fault.
    const headers = new Headers({ authorization: this.#authorization, accept: 'application/json, application/problem+json' });
    if (opts.body !== undefined) headers.set('content-type', 'application/json');
    if (opts.idempotencyKey !== undefined) headers.set('idempotency-key', opts.idempotencyKey);
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    // Checked here too: a fetch passed in the options need not check a signal that is already aborted.
    if (isAborted(opts.signal)) throw new JanusClientError(`${method} ${path}: aborted`, { code: 'aborted', cause: opts.signal?.reason });
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = opts.signal === undefined ? timeout : AbortSignal.any([opts.signal, timeout]);
    const url = `${this.#base}${path}`;
    try {
      const res = await this.#fetch(url, { method, headers, signal, ...(body !== undefined ? { body } : {}) });
      // Read whole under the same signal: a body that stalls is a timeout too.
      const text = await res.text();
      return { status: res.status, statusText: res.statusText, headers: res.headers, body: parseJson(text), text };
    } catch (error) {
      if (isAborted(opts.signal)) throw new JanusClientError(`${method} ${path}: aborted`, { code: 'aborted', cause: opts.signal?.reason });
      if (timeout.aborted) throw new JanusClientError(`${method} ${path}: no answer within ${this.#timeoutMs} ms`, { code: 'timeout', cause: error });
      throw new JanusClientError(`${method} ${path}: ${error instanceof Error ? error.message : String(error)}`, { code: 'network', cause: error });
    }
  }
}

/** A function, not an inline test: TypeScript would keep a signal checked before an `await` narrowed to "not aborted" after it. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function invalid(status: number, problem: Problem): InvalidResult {
  return { kind: 'invalid', status, errors: problem.errors ?? [], problem };
}

function unavailable(answer: Answer): UnavailableResult {
  return { kind: 'unavailable', retryAfterMs: retryAfter(answer.headers) ?? DEFAULT_RETRY_AFTER_MS, problem: problemOf(answer) };
}

/**
 * `/v1/jobs/<id>`, or undefined for an id no path segment can carry: the URL parser resolves `.`
 * and `..` (even percent-encoded) as dot segments, which would address another route.
 */
function jobPath(jobId: string): string | undefined {
  const segment = encodeURIComponent(jobId);
  if (segment === '' || /^(\.|%2e){1,2}$/i.test(segment)) return undefined;
  return `/v1/jobs/${segment}`;
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function asObject(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

/** A limiter's 429 body; anything else with 429 (e.g. too many failed authentications) is not a decision. */
function rejectedBody(value: unknown): RejectedBody | undefined {
  const b = asObject(value);
  if (b?.status !== 'rejected' || typeof b.reason !== 'string' || typeof b.retryAfterMs !== 'number') return undefined;
  return { status: 'rejected', reason: b.reason as RejectReason, retryAfterMs: b.retryAfterMs };
}

/**
 * The answer's problem details; an answer without them (a proxy's HTML 503, say) gets the RFC 9457
 * default, `about:blank` with the status, so every result and error carries one.
 */
function problemOf(answer: Answer): Problem {
  const b = asObject(answer.body);
  if (b && typeof b.type === 'string' && typeof b.title === 'string' && typeof b.status === 'number') {
    const problem: Problem = { type: b.type, title: b.title, status: b.status };
    if (typeof b.detail === 'string') problem.detail = b.detail;
    if (Array.isArray(b.errors)) problem.errors = b.errors.filter(isFieldError);
    return problem;
  }
  const detail = answer.text.slice(0, 500);
  return { type: 'about:blank', title: answer.statusText || `HTTP ${answer.status}`, status: answer.status, ...(detail !== '' ? { detail } : {}) };
}

function isFieldError(value: unknown): value is FieldError {
  const e = asObject(value);
  return typeof e?.path === 'string' && typeof e.message === 'string';
}

function capacityLimit(value: unknown): CapacityLimit | undefined {
  const l = asObject(value);
  if (!l || typeof l.scope !== 'string' || typeof l.kind !== 'string' || typeof l.capacity !== 'number' || typeof l.requested !== 'number') return undefined;
  return l as unknown as CapacityLimit;
}

/** `Retry-After` (delay in seconds, or an HTTP date) in ms from now. */
export function retryAfter(headers: Headers, now = Date.now()): number | undefined {
  const value = headers.get('retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function httpFault(answer: Answer): JanusClientError {
  const problem = problemOf(answer);
  const detail = problem.detail !== undefined ? `: ${problem.detail}` : '';
  return new JanusClientError(`HTTP ${answer.status} ${problem.title}${detail}`, { code: 'http', status: answer.status, problem, retryAfterMs: retryAfter(answer.headers) });
}

function protocolFault(answer: Answer, expected: string): JanusClientError {
  return new JanusClientError(`HTTP ${answer.status}: the body is not ${expected}: ${answer.text.slice(0, 200)}`, { code: 'protocol', status: answer.status });
}

/**
 * Never earlier than `retryAfterMs` (for a rate or budget that try would be refused for sure), plus
 * up to 20% of it (at least 50 ms, at most 5 s) so that producers told the same time do not all
 * arrive in the same millisecond.
 */
export function jittered(retryAfterMs: number, random: number): number {
  const base = Math.max(0, retryAfterMs);
  const spread = Math.min(Math.max(base * 0.2, 50), 5_000);
  return Math.ceil(base + random * spread);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => reject(new JanusClientError('aborted while waiting to retry', { code: 'aborted', cause: signal?.reason }));
    if (signal?.aborted === true) return aborted();
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      aborted();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
