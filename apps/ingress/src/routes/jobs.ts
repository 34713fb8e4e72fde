import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import {
  type RejectReason,
  AdmittedResponse,
  BatchAdmittedResponse,
  BatchRejectedResponse,
  IdempotencyKey,
  JobView,
  payloadDedupeKey,
  QueuedResponse,
  RejectedResponse,
  zodFieldErrors,
} from '@janus/contracts';
import { exceedsCapacity, priorityShareOf, type CompiledPolicy, type IdempotencyKind, type IdempotencyState } from '@janus/limiter';
import { dedupeRoomKey, enqueueProducerJob, type EnqueueResult, type JobBound, type WaitingRow, type WaitingStore } from '@janus/waiting-room';
import type { AdmissionService, AdmitAnswer, PreparedJob } from '../admission.js';
import { fieldErrorsDetail, readJsonBody, requestHeader } from '@janus/http';
import { parseIdempotencyRecord } from '@janus/execution';
import { fingerprint, jobContent } from '../fingerprint.js';
import { isJobId, newJobId } from '../ids.js';
import type { TenantAuth } from '../auth.js';
import type { IngressMetrics } from '../metrics.js';
import { bearerSecurity, problemContent, problemResponses, subApp, z, type ParamContext, JobRequestBody, BatchRequestBody } from '../openapi.js';
import { PROBLEM, invalidRequest, problem, retryAfterSeconds, unavailable, type FieldError } from '../problem.js';

export interface JobsRouteDeps {
  readonly policy: () => CompiledPolicy | undefined;
  readonly admission: AdmissionService;
  readonly metrics: IngressMetrics;
  readonly auth: TenantAuth;
  /**
   * Reads the tenant's own job as GET shows it: what the persister stored, merged with where the
   * job stands in the waiting room (queued, retrying, cancelled); undefined when unknown (or another tenant's).
   */
  readonly jobView: (tenant: string, jobId: string) => Promise<JobView | undefined>;
  /** The waiting room (mode `queue`, cancel); without it mode `queue` answers like `now`. */
  readonly room?: WaitingRoomAccess;
  /** The largest message the NATS server takes (its `max_payload`), when connected. */
  readonly maxMessageBytes?: () => number | undefined;
  /** What a producer's idempotency key holds in the limiter (a replay of a job whose type left the policy since). */
  readonly idempotencyState?: (tenant: string, key: string) => Promise<IdempotencyState>;
}

export interface WaitingRoomAccess {
  readonly store: WaitingStore;
  /** Tells the dispatcher a job joined the room. */
  wake(): void;
  /** Whether the limiter holds a live record of this key (a producer's, or `dedupe`: a payload's) — a replay of an admitted request. */
  keyLive?(tenant: string, key: string, kind?: IdempotencyKind): Promise<boolean>;
  /** How full a job's token buckets are now (Limiter.bucketLevels): what a queued job's `notBefore` starts from. */
  bucketLevels?(buckets: JobBound['buckets']): Promise<ReadonlyMap<string, number>>;
}

const ENVELOPE_BYTES = 16 * 1024;
/** A full room frees as its jobs are admitted: ask again in a few seconds. */
const QUEUE_FULL_RETRY_MS = 5_000;
const DEFAULT_PAYLOAD_BYTES = 16 * 1024;
/** Answers that refuse a submission's input before any admission decision (janus_ingress_request_errors_total). */
const INPUT_ERRORS: ReadonlySet<number> = new Set([400, 401, 403, 404, 413, 415]);
/** The most bytes JSON text can spend on one byte of a payload's compact UTF-8 form (`\u0001` for U+0001). */
const ESCAPED_BYTES_PER_BYTE = 6;

// Per compiled policy (a new policy is a new object): asked on every submit, computed once.
const largestPayloads = new WeakMap<CompiledPolicy, number>();
function largestPayload(policy: CompiledPolicy | undefined): number {
  if (policy === undefined) return DEFAULT_PAYLOAD_BYTES;
  let max = largestPayloads.get(policy);
  if (max === undefined) {
    max = DEFAULT_PAYLOAD_BYTES;
    for (const jt of policy.jobTypes.values()) max = Math.max(max, jt.maxPayloadBytes);
    largestPayloads.set(policy, max);
  }
  return max;
}

const idempotencyHeader = z.object({
  'idempotency-key': z.string().optional().openapi({ description: '1–200 printable characters (or body field `idempotencyKey`)' }),
});

const submitRoute = createRoute({
  method: 'post',
  path: '/v1/jobs',
  summary: 'Submit one job',
  security: bearerSecurity,
  request: {
    headers: idempotencyHeader,
    body: { required: true, content: { 'application/json': { schema: JobRequestBody } } },
  },
  responses: {
    200: {
      description: 'Same idempotency key within the window (in mode `now` too while its job waits in the room: its `queued` answer), or (job type with `dedupe`) the same payload as a job admitted or queued within `dedupe.windowMs`: the first answer plus `duplicate: true`',
      content: { 'application/json': { schema: z.union([AdmittedResponse, QueuedResponse]) } },
    },
    202: { description: 'Admitted (published and acknowledged by JetStream)', content: { 'application/json': { schema: z.union([AdmittedResponse, QueuedResponse]) } } },
    ...problemResponses,
    404: { description: 'Unknown job type (`.../unknown-job-type`)', content: problemContent },
    413: { description: 'Payload over the job type\'s `maxPayloadBytes`, or body over the hard cap', content: problemContent },
    409: { description: 'A request with the same idempotency key is still being admitted (`.../idempotency-key-in-progress`, `Retry-After`): nothing was admitted for this one; send it again', content: problemContent },
    422: { description: 'No wait can admit it: a cost or batch larger than a limit\'s capacity (`.../exceeds-capacity`, naming the limit); or the idempotency key was used for a different request (`.../idempotency-key-reused`)', content: problemContent },
    429: { description: 'Rejected by a limit; `Retry-After` in whole seconds', content: { 'application/json': { schema: RejectedResponse } } },
  },
});

const batchRoute = createRoute({
  method: 'post',
  path: '/v1/jobs/batch',
  summary: 'Submit 1–1000 jobs, all or nothing',
  security: bearerSecurity,
  request: {
    headers: idempotencyHeader,
    body: { required: true, content: { 'application/json': { schema: BatchRequestBody } } },
  },
  responses: {
    200: { description: 'Same batch idempotency key within the window, or every job a replay (its own key, or its payload for a job type with `dedupe`); a job whose own key names a job waiting in the room is answered with that job\'s `queued` answer plus `duplicate: true`', content: { 'application/json': { schema: BatchAdmittedResponse } } },
    202: { description: 'Every job admitted, in request order', content: { 'application/json': { schema: BatchAdmittedResponse } } },
    ...problemResponses,
    404: { description: 'A job names an unknown job type', content: problemContent },
    413: { description: 'A payload over its job type\'s limit, or body over the hard cap', content: problemContent },
    409: { description: 'A request with the same idempotency key (the batch\'s or a job\'s) is still being admitted (`.../idempotency-key-in-progress`, `Retry-After`): nothing was admitted; send it again', content: problemContent },
    422: { description: 'No wait can admit it: a cost or batch larger than a limit\'s capacity (`.../exceeds-capacity`, naming the limit); or the batch\'s or a job\'s idempotency key was used for a different request (`.../idempotency-key-reused`); nothing was admitted', content: problemContent },
    429: { description: 'The first job that could not be admitted; nothing was admitted', content: { 'application/json': { schema: BatchRejectedResponse } } },
  },
});

const getRoute = createRoute({
  method: 'get',
  path: '/v1/jobs/{jobId}',
  summary: "The tenant's own job, as the persister stored it (eventually consistent)",
  security: bearerSecurity,
  // Any text is accepted here: an id Janus could not have issued is simply not found (404).
  request: { params: z.object({ jobId: z.string().openapi({ description: 'The job id answered at submission (26 characters)' }) }) },
  responses: {
    200: { description: 'The job and its attempts; extensions of the contract: `payload` and `lastError`', content: { 'application/json': { schema: JobView } } },
    401: problemResponses[401],
    403: problemResponses[403],
    404: { description: 'No such job for this tenant', content: problemContent },
    503: problemResponses[503],
  },
});

/** How long a cancel waits for the persister to store a job it does not know yet, before 404. */
const STORED_WITHIN_MS = 1_000;

const cancelRoute = createRoute({
  method: 'delete',
  path: '/v1/jobs/{jobId}',
  summary: "Cancel the tenant's own job while it waits (queued, or a retry not yet admitted)",
  security: bearerSecurity,
  request: { params: z.object({ jobId: z.string().openapi({ description: 'The job id answered at submission' }) }) },
  responses: {
    204: { description: 'Cancelled: it will not run (status `cancelled`)' },
    401: problemResponses[401],
    403: problemResponses[403],
    404: { description: 'No such job for this tenant', content: problemContent },
    409: { description: 'Running or finished, or being admitted right now (`.../not-cancellable`)', content: problemContent },
    503: problemResponses[503],
  },
});

function notCancellable(why: string): Response {
  return problem(409, PROBLEM.notCancellable, 'Not cancellable', { detail: `the job cannot be cancelled: ${why}` });
}

type HeaderKey = { ok: true; key: string | undefined } | { ok: false; response: Response };

/** `Idempotency-Key` header and body `idempotencyKey`: either, or both when equal. */
function idempotencyKey(header: string | undefined, bodyKey: string | undefined, bodyPath: string): HeaderKey {
  if (header === undefined) return { ok: true, key: bodyKey };
  const parsed = IdempotencyKey.safeParse(header);
  if (!parsed.success) return { ok: false, response: invalidRequest(zodFieldErrors(parsed.error.issues, ['Idempotency-Key']), 'invalid Idempotency-Key header') };
  if (bodyKey !== undefined && bodyKey !== header) {
    return {
      ok: false,
      response: invalidRequest([{ path: bodyPath, message: 'differs from the Idempotency-Key header' }], 'Idempotency-Key header and body idempotencyKey differ'),
    };
  }
  return { ok: true, key: header };
}

/**
 * What a job message holds besides its payload (ids, lease and its token, the retry context with
 * the producer's idempotency keys), generously: a payload may take the rest of the NATS server's
 * `max_payload`.
 */
const JOB_MESSAGE_OVERHEAD_BYTES = 8 * 1024;

/**
 * Job type known and payload within its limit — the job type's, and what the NATS server can carry
 * in one message (`maxMessageBytes`; a message over it could never be published, so a payload that
 * would make one is refused here like any too large payload, not admitted and then answered 503);
 * errors name the field.
 */
function checkJob(policy: CompiledPolicy, job: PreparedJob, prefix: string, maxMessageBytes?: number): Response | undefined {
  const jt = policy.jobType(job.type);
  if (!jt) {
    return problem(404, PROBLEM.unknownJobType, 'Unknown job type', {
      detail: `job type "${job.type}" is not in the running policy`,
      errors: [{ path: `${prefix}type`, message: 'unknown job type' }],
    });
  }
  // The payload's size as it travels in the job message.
  const bytes = job.payloadJson === undefined ? 0 : Buffer.byteLength(job.payloadJson, 'utf8');
  if (bytes > jt.maxPayloadBytes) {
    return problem(413, PROBLEM.payloadTooLarge, 'Payload too large', {
      detail: `the payload has ${bytes} bytes; job type "${job.type}" allows ${jt.maxPayloadBytes}`,
      errors: [{ path: `${prefix}payload`, message: `over ${jt.maxPayloadBytes} bytes` }],
    });
  }
  if (maxMessageBytes !== undefined && bytes > maxMessageBytes - JOB_MESSAGE_OVERHEAD_BYTES) {
    const most = Math.max(0, maxMessageBytes - JOB_MESSAGE_OVERHEAD_BYTES);
    return problem(413, PROBLEM.payloadTooLarge, 'Payload too large', {
      detail: `the payload has ${bytes} bytes; the NATS server carries messages of at most ${maxMessageBytes} bytes (its max_payload), so a job's payload may have at most ${most}`,
      errors: [{ path: `${prefix}payload`, message: `over ${most} bytes` }],
    });
  }
  return undefined;
}

/**
 * A job ready for admission. A job type with `dedupe` identifies a job without a producer key by
 * its payload (CONTRACT §2); a producer's key, when the job has one, decides alone (docs/api.md).
 */
function prepare(policy: CompiledPolicy, job: BatchRequestBody['jobs'][number], idempotencyKey: string | undefined): PreparedJob {
  const dedupe = idempotencyKey === undefined ? policy.document.jobTypes[job.type]?.dedupe : undefined;
  return {
    jobId: newJobId(),
    type: job.type,
    priority: job.priority,
    ...(job.payload !== undefined ? { payloadJson: JSON.stringify(job.payload) } : {}),
    ...(job.cost !== undefined ? { cost: job.cost } : {}),
    ...(idempotencyKey !== undefined ? { idempotencyKey, fingerprint: fingerprint(jobContent(job)) } : {}),
    ...(dedupe !== undefined ? { dedupe: { key: payloadDedupeKey(job.type, job.payload), windowMs: dedupe.windowMs } } : {}),
  };
}

/** Where the job waits in the room under a key: the producer's, or its payload's (dedupe). */
function roomKeyOf(job: PreparedJob): string | undefined {
  return job.idempotencyKey ?? (job.dedupe !== undefined ? dedupeRoomKey(job.dedupe.key) : undefined);
}

/** A waiting job's first answer, replayed: `queued` with its current `notBefore`, plus `duplicate: true`. */
function queuedAnswer(row: WaitingRow): { jobId: string; status: 'queued'; notBefore: string; duplicate: true } {
  return { jobId: row.jobId, status: 'queued', notBefore: row.notBefore.toISOString(), duplicate: true };
}

/** `keyPath`: where the request's own idempotency key came from (`Idempotency-Key` or `idempotencyKey`). */
function answer(c: Context, result: AdmitAnswer, shape: 'single' | 'batch', keyPath = 'Idempotency-Key'): Response {
  switch (result.kind) {
    case 'admitted':
      return c.json(result.body, result.status);
    case 'rejected': {
      const body = shape === 'batch'
        ? { status: 'rejected', index: result.index, reason: result.reason, retryAfterMs: result.retryAfterMs }
        : { status: 'rejected', reason: result.reason, retryAfterMs: result.retryAfterMs };
      return c.json(body, 429, { 'retry-after': retryAfterSeconds(result.retryAfterMs) });
    }
    case 'unknown_job_type': {
      const errors: FieldError[] = [{ path: shape === 'batch' ? `jobs.${result.index}.type` : 'type', message: 'unknown job type' }];
      return problem(404, PROBLEM.unknownJobType, 'Unknown job type', { detail: 'the job type is not in the running policy', errors });
    }
    case 'exceeds_capacity': {
      // No wait can admit it: 422 naming the limit (CONTRACT §3 v1.1), not a 429 to retry forever.
      const { limit, index } = result;
      const prefix = shape === 'batch' ? `jobs.${index}.` : '';
      const name = [limit.scope, limit.dependency, limit.scope === 'dependency' && limit.tenant !== undefined ? `tenant ${limit.tenant}` : undefined, limit.kind].filter((x) => x !== undefined).join(' ');
      const path = limit.per === 'cost' ? `${prefix}cost` : shape === 'batch' ? 'jobs' : 'type';
      // Priority shedding may be the bound: a low or normal job may use only its share of a limit.
      const share = priorityShareOf(limit);
      if (share !== undefined) {
        const bound = `${share.priority} priority's share of the ${name} limit (ceil(${share.share} × ${limit.capacity}) = ${share.capacity})`;
        return problem(422, PROBLEM.exceedsCapacity, 'Exceeds capacity', {
          detail: `the request takes ${limit.requested} of the ${name} limit, whose capacity is ${limit.capacity}; priority shedding lets a ${share.priority}-priority job use at most ${share.capacity} of it (the ${bound}): no wait can admit it at this priority`,
          errors: [{ path, message: `exceeds the ${bound}` }],
          extra: { ...(shape === 'batch' ? { index } : {}), limit },
        });
      }
      return problem(422, PROBLEM.exceedsCapacity, 'Exceeds capacity', {
        detail: `the request takes ${limit.requested} of the ${name} limit, whose capacity is ${limit.capacity}: no wait can admit it`,
        errors: [{ path, message: `exceeds the capacity (${limit.capacity}) of the ${name} limit` }],
        extra: { ...(shape === 'batch' ? { index } : {}), limit },
      });
    }
    case 'idempotency_key_reused': {
      const path = result.index >= 0 && shape === 'batch' ? `jobs.${result.index}.idempotencyKey` : keyPath;
      return problem(422, PROBLEM.idempotencyKeyReused, 'Idempotency key reused', {
        detail: 'this idempotency key was used for a different request (type, payload, priority or cost) within its window; nothing was admitted',
        errors: [{ path, message: 'already used for a different request' }],
      });
    }
    case 'in_progress': {
      // The first request with this key is still being published: its answer is not known yet.
      const path = result.index >= 0 && shape === 'batch' ? `jobs.${result.index}.idempotencyKey` : keyPath;
      return problem(409, PROBLEM.idempotencyKeyInProgress, 'Idempotency key in progress', {
        detail: 'a request with this idempotency key is still being admitted; nothing was admitted for this one: send it again shortly',
        errors: [{ path, message: 'a request with this key is in progress' }],
        headers: { 'retry-after': '1' },
      });
    }
    case 'unavailable':
      return unavailable(result.detail, Math.ceil(result.retryAfterMs / 1000));
  }
}

const policyNotLoaded = () => unavailable('the policy is not loaded yet');

/** The JSON body (415 / 413 / 400 from readJsonBody), validated by `schema` (400 naming every bad field). */
async function validBody<T>(c: Context, cap: number, schema: z.ZodType<T>): Promise<{ ok: true; value: T } | { ok: false; response: Response }> {
  const body = await readJsonBody(c, { cap });
  if (!body.ok) return body;
  const parsed = schema.safeParse(body.value);
  if (parsed.success) return { ok: true, value: parsed.data };
  const errors = zodFieldErrors(parsed.error.issues);
  return { ok: false, response: invalidRequest(errors, `invalid body: ${fieldErrorsDetail(errors)}`) };
}

export function jobsRoutes(deps: JobsRouteDeps) {
  const app = subApp();
  // A payload is measured as compact JSON (UTF-8), but a producer may write it escaped: `\u00e9` is six
  // bytes for é's two, `\ud83d\ude00` twelve for an emoji's four (Python's json.dumps does that by
  // default), `\u0001` six for one. The body cap leaves room for the worst, so that only the
  // payload's own limit (413 naming `payload`) refuses a payload.
  const singleCap = () => ESCAPED_BYTES_PER_BYTE * largestPayload(deps.policy()) + ENVELOPE_BYTES;
  const batchCap = () => 1000 * (largestPayload(deps.policy()) + 1024) + ENVELOPE_BYTES;
  const observe = (started: bigint, result: AdmitAnswer) => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // a 200 is a replay: timed as the duplicate it is (its count is `duplicate` too)
    deps.metrics.admissionSeconds.observe({ decision: result.kind === 'admitted' && result.status === 200 ? 'duplicate' : result.kind }, seconds);
  };

  // The two submit routes are the hot path: documented from their route definitions, but validated
  // here rather than by @hono/zod-openapi's validator chain (a media-type gate, a header validator
  // building every header into an object, and a JSON validator parsing the body a second time),
  // which cost as much as the rest of the request. Same checks, same answers: authentication
  // (401/403/429), 415/413/400 from readJsonBody, then one zod parse whose failure is the same
  // problem+json 400.
  function postValidated<T>(route: Parameters<typeof app.openAPIRegistry.registerPath>[0], cap: () => number, schema: z.ZodType<T>, handle: (c: Context, tenant: string, body: T) => Promise<Response>): void {
    app.openAPIRegistry.registerPath(route);
    const respond = async (c: Context): Promise<Response> => {
      const who = deps.auth.authenticate(c);
      if ('response' in who) return who.response;
      const body = await validBody(c, cap(), schema);
      return body.ok ? handle(c, who.tenant, body.value) : body.response;
    };
    app.post(route.path, async (c) => {
      const res = await respond(c);
      if (INPUT_ERRORS.has(res.status)) deps.metrics.requestErrors.inc({ route: route.path, status: res.status });
      return res;
    });
  }

  postValidated(submitRoute, singleCap, JobRequestBody, submit);
  async function submit(c: Context, tenant: string, body: JobRequestBody): Promise<Response> {
    const started = process.hrtime.bigint();
    const policy = deps.policy();
    if (!policy) return policyNotLoaded();
    const key = idempotencyKey(requestHeader(c, 'idempotency-key'), body.idempotencyKey, 'idempotencyKey');
    if (!key.ok) return key.response;
    const job = prepare(policy, body, key.key);
    const keyPath = requestHeader(c, 'idempotency-key') !== undefined ? 'Idempotency-Key' : 'idempotencyKey';
    const bad = checkJob(policy, job, '', deps.maxMessageBytes?.());
    if (bad) return (policy.jobType(job.type) === undefined && (await replayOfGoneType(c, tenant, job, keyPath))) || bad;
    if (body.mode === 'queue' && deps.room !== undefined) return submitQueued(c, tenant, policy, job, keyPath, started, deps.room);
    if (job.idempotencyKey !== undefined && deps.room !== undefined) {
      // A job waiting in the room under this key (sent in mode `queue`): this request is its replay
      // (200, its `queued` answer) or, differing from it, 422 — nothing is admitted. Best effort, as
      // for payloads below: with PostgreSQL unreachable (or the job queued at this very moment) the
      // admission decides, and the waiting job, when its turn comes, finds the key taken by this one
      // and leaves the room `cancelled`, naming this one (docs/waiting-room.md).
      const waiting = await waitingUnderKeys(deps.room, tenant, [job.idempotencyKey]).catch(() => undefined);
      const row = waiting?.get(job.idempotencyKey);
      if (row) return queuedReplay(row, job, keyPath);
    }
    if (job.dedupe !== undefined && deps.room !== undefined) {
      // The same payload waiting in the room (sent in mode `queue`) is answered as its replay too.
      // Best effort: with PostgreSQL unreachable the job is admitted, and the waiting one, when its
      // turn comes, finds this one's key and leaves the room cancelled, naming this one.
      const waiting = await deps.room.store.waitingWithKey(tenant, dedupeRoomKey(job.dedupe.key)).catch(() => undefined);
      if (waiting) return queuedReplay(waiting, job, keyPath);
    }
    // A producer key on a job type with `dedupe`: the key answers for the request as always, and the
    // payload still identifies the job (an identical payload admitted under another key, or none, is
    // this request's replay). Mode `now` only: in mode `queue` the producer's key decides alone.
    const dedupe = job.idempotencyKey !== undefined ? policy.document.jobTypes[job.type]?.dedupe : undefined;
    const payloadKey = dedupe !== undefined ? { key: payloadDedupeKey(job.type, body.payload), windowMs: dedupe.windowMs } : undefined;
    if (payloadKey !== undefined && deps.room !== undefined) {
      const waiting = await deps.room.store.waitingWithKey(tenant, dedupeRoomKey(payloadKey.key)).catch(() => undefined);
      if (waiting) return queuedReplay(waiting, { ...job, fingerprint: undefined }, keyPath);
    }
    const result = await deps.admission.admit(tenant, policy, [job], 'single', undefined, false, payloadKey);
    observe(started, result);
    return answer(c, result, 'single', keyPath);
  }

  /**
   * Mode `queue` (CONTRACT §3): admitted now when nothing of its type waits and the limits allow;
   * otherwise it joins the waiting room (202 `queued` with `notBefore`), whose dispatcher admits it
   * fairly. It does not jump the room: while jobs of its type wait, it waits behind them.
   */
  async function submitQueued(c: Context, tenant: string, policy: CompiledPolicy, job: PreparedJob, keyPath: string, started: bigint, room: WaitingRoomAccess): Promise<Response> {
    try {
      const roomKey = roomKeyOf(job);
      if (job.idempotencyKey !== undefined) {
        const waiting = (await waitingUnderKeys(room, tenant, [job.idempotencyKey])).get(job.idempotencyKey);
        if (waiting) return queuedReplay(waiting, job, keyPath);
      } else if (roomKey !== undefined) {
        const waiting = await room.store.waitingWithKey(tenant, roomKey);
        if (waiting) return queuedReplay(waiting, job, keyPath);
      }
      let refused: { reason: RejectReason; retryAfterMs: number } | undefined;
      // The estimate counts from before the admission was asked: its `retryAfterMs` runs from the
      // limiter's decision, which is later, so the job cannot be admitted before this.
      let asked = Date.now();
      // A replay of a request that was admitted (its key is live in the limiter) is answered by the
      // admission as the duplicate it is, even while jobs of its type wait: it must not queue a new job.
      const replay =
        (job.idempotencyKey !== undefined && (await room.keyLive?.(tenant, job.idempotencyKey)) === true) ||
        (job.dedupe !== undefined && (await room.keyLive?.(tenant, job.dedupe.key, 'dedupe')) === true);
      // A job no wait can admit (over a limit's capacity, or its priority's share of one) is 422
      // now rather than queued for ever. A replay is answered by the admission below.
      if (!replay) {
        const over = exceedsCapacity(policy, { jobs: [{ jobId: job.jobId, tenant, jobType: job.type, priority: job.priority, ...(job.cost !== undefined ? { cost: job.cost } : {}) }] });
        if (over !== undefined) {
          deps.admission.countAll([job], 'rejected', 'exceeds_capacity');
          return answer(c, over, 'single', keyPath);
        }
      }
      if (replay || !(await room.store.anyWaiting(job.type))) {
        asked = Date.now();
        const result = await deps.admission.admit(tenant, policy, [job], 'single', undefined, true);
        if (result.kind !== 'rejected') {
          observe(started, result);
          return answer(c, result, 'single', keyPath);
        }
        refused = { reason: result.reason, retryAfterMs: result.retryAfterMs };
      }
      const queued: EnqueueResult = await enqueueProducerJob(room.store, policy, { ...job, tenant, idempotencyKey: roomKey }, refused, asked, room.bucketLevels?.bind(room));
      switch (queued.kind) {
        case 'queued':
          room.wake();
          deps.admission.countAll([job], 'queued', refused?.reason ?? 'room_not_empty');
          deps.metrics.admissionSeconds.observe({ decision: 'queued' }, Number(process.hrtime.bigint() - started) / 1e9);
          return c.json({ jobId: job.jobId, status: 'queued', notBefore: queued.notBefore.toISOString() }, 202);
        case 'duplicate':
          return queuedReplay(queued.row, job, keyPath);
        case 'queue_full':
          deps.admission.countAll([job], 'rejected', 'queue_full');
          deps.metrics.admissionSeconds.observe({ decision: 'rejected' }, Number(process.hrtime.bigint() - started) / 1e9);
          return c.json({ status: 'rejected', reason: 'queue_full', retryAfterMs: QUEUE_FULL_RETRY_MS }, 429, { 'retry-after': retryAfterSeconds(QUEUE_FULL_RETRY_MS) });
      }
    } catch (error) {
      // PostgreSQL (the room's durable record) is unreachable: nothing was queued.
      deps.admission.countAll([job], 'unavailable', 'room_unavailable');
      return unavailable(`the waiting room is unavailable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /**
   * A keyed request whose job type is not in the policy (any more): if the key names a job admitted
   * within its window — its type deleted since — this is that job's replay (200, or 422 for another
   * request, 409 while it is being admitted), as CONTRACT §3 says for any replay; else undefined (404).
   */
  async function replayOfGoneType(c: Context, tenant: string, job: PreparedJob, keyPath: string): Promise<Response | undefined> {
    if (job.idempotencyKey === undefined || deps.idempotencyState === undefined) return undefined;
    const held = await deps.idempotencyState(tenant, job.idempotencyKey).catch(() => undefined);
    if (held === undefined || held.state === 'none') return undefined;
    const { fp, body } = parseIdempotencyRecord(held.record);
    if (fp !== undefined && fp !== job.fingerprint) return answer(c, { kind: 'idempotency_key_reused', index: -1 }, 'single', keyPath);
    if (held.state === 'in_progress') return answer(c, { kind: 'in_progress', index: -1 }, 'single', keyPath);
    deps.admission.countAll([job], 'duplicate', 'idempotency');
    return c.json({ ...body, duplicate: true }, 200);
  }

  /** The same idempotency key while the first job waits: its answer again (200), or 422 for a different request. */
  function queuedReplay(row: WaitingRow, job: PreparedJob, keyPath: string): Response {
    if (row.fingerprint !== null && row.fingerprint !== job.fingerprint) {
      return problem(422, PROBLEM.idempotencyKeyReused, 'Idempotency key reused', {
        detail: 'this idempotency key was used for a different request (type, payload, priority or cost) within its window; nothing was queued',
        errors: [{ path: keyPath, message: 'already used for a different request' }],
      });
    }
    deps.admission.countAll([job], 'duplicate', job.dedupe !== undefined ? 'dedupe' : 'idempotency');
    return Response.json(queuedAnswer(row), { status: 200 });
  }

  /**
   * The tenant's jobs waiting in the room under these producer keys, by key — leaving out a job still
   * `queued` whose key the limiter holds a live record of: another job was admitted under the key
   * (in mode `now`, racing this one's queueing), and the admission answers for it; the waiting one
   * leaves the room `cancelled` when its turn comes. (A job the dispatcher is admitting right now
   * holds its own key: it is answered as the waiting job it still is.)
   */
  async function waitingUnderKeys(room: WaitingRoomAccess, tenant: string, keys: readonly string[]): Promise<Map<string, WaitingRow>> {
    const waiting = await room.store.waitingWithKeys(tenant, keys);
    for (const [key, row] of [...waiting]) {
      if (row.state === 'queued' && (await room.keyLive?.(tenant, key).catch(() => false)) === true) waiting.delete(key);
    }
    return waiting;
  }

  postValidated(batchRoute, batchCap, BatchRequestBody, submitBatch);
  async function submitBatch(c: Context, tenant: string, body: BatchRequestBody): Promise<Response> {
    const started = process.hrtime.bigint();
    const policy = deps.policy();
    if (!policy) return policyNotLoaded();
    const header = requestHeader(c, 'idempotency-key');
    let batchKey: string | undefined;
    if (header !== undefined) {
      const parsed = IdempotencyKey.safeParse(header);
      if (!parsed.success) return invalidRequest(zodFieldErrors(parsed.error.issues, ['Idempotency-Key']), 'invalid Idempotency-Key header');
      batchKey = parsed.data;
    }
    const jobs = body.jobs.map((j) => prepare(policy, j, j.idempotencyKey));
    for (const [i, job] of jobs.entries()) {
      const bad = checkJob(policy, job, `jobs.${i}.`, deps.maxMessageBytes?.());
      if (bad) return bad;
    }
    const seen = new Set<string>();
    for (const [i, job] of body.jobs.entries()) {
      if (job.idempotencyKey === undefined) continue;
      if (seen.has(job.idempotencyKey)) {
        return invalidRequest([{ path: `jobs.${i}.idempotencyKey`, message: 'used twice in one batch' }], 'duplicate idempotency key within the batch');
      }
      seen.add(job.idempotencyKey);
    }
    const windowMs = Math.max(...jobs.map((j) => policy.jobType(j.type)?.idempotencyWindowMs ?? 86_400_000));
    const batchIdempotency = batchKey !== undefined ? { key: batchKey, windowMs, fingerprint: fingerprint(body.jobs.map((j) => ({ ...jobContent(j), ...(j.idempotencyKey !== undefined ? { idempotencyKey: j.idempotencyKey } : {}) }))) } : undefined;
    if (seen.size > 0 && deps.room !== undefined) {
      // Jobs whose own key names a job waiting in the room (best effort, as for a single job).
      const waiting = await waitingUnderKeys(deps.room, tenant, [...seen]).catch(() => undefined);
      if (waiting !== undefined && waiting.size > 0) {
        const around = await batchAroundRoom(c, tenant, policy, jobs, waiting, batchKey);
        if (around !== undefined) return around;
      }
    }
    const result = await deps.admission.admit(tenant, policy, jobs, 'batch', batchIdempotency);
    observe(started, result);
    return answer(c, result, 'batch');
  }

  /**
   * A batch some of whose jobs carry a key that names a job waiting in the room: each such job is
   * that job's replay (its `queued` answer plus `duplicate: true`; a different request under the key
   * is 422 and nothing of the batch is admitted), the others are admitted as one batch. With a batch
   * key whose record is not live, 409 in-progress instead (the batch's record can only hold admitted
   * jobs): sent again once the waiting job is admitted, its job's key answers as a duplicate.
   * Undefined: the batch key is live, and its admission answers the batch's replay.
   */
  async function batchAroundRoom(c: Context, tenant: string, policy: CompiledPolicy, jobs: readonly PreparedJob[], waiting: ReadonlyMap<string, WaitingRow>, batchKey: string | undefined): Promise<Response | undefined> {
    const started = process.hrtime.bigint();
    // A replay of a batch whose key was recorded: the batch's key answers it, whatever waits.
    if (batchKey !== undefined && (await deps.room?.keyLive?.(tenant, batchKey).catch(() => false)) === true) return undefined;
    const at = jobs.map((j) => (j.idempotencyKey !== undefined ? waiting.get(j.idempotencyKey) : undefined));
    const reusedAt = at.findIndex((row, i) => row !== undefined && row.fingerprint !== null && row.fingerprint !== jobs[i]?.fingerprint);
    if (reusedAt >= 0) {
      deps.admission.countAll(jobs, 'rejected', 'idempotency_key_reused');
      return answer(c, { kind: 'idempotency_key_reused', index: reusedAt }, 'batch');
    }
    if (batchKey !== undefined) {
      deps.admission.countAll(jobs, 'rejected', 'idempotency_in_progress');
      return answer(c, { kind: 'in_progress', index: at.findIndex((row) => row !== undefined) }, 'batch');
    }
    const rest = jobs.filter((_, i) => at[i] === undefined);
    const restIndex = jobs.map((_, i) => i).filter((i) => at[i] === undefined);
    const waitingJobs = jobs.filter((_, i) => at[i] !== undefined);
    let entries: object[] = [];
    let status: 200 | 202 = 200;
    if (rest.length > 0) {
      const result = await deps.admission.admit(tenant, policy, rest, 'batch');
      observe(started, result);
      if (result.kind !== 'admitted') {
        // The index names the job in the whole batch; nothing of it was admitted.
        return answer(c, 'index' in result && result.index >= 0 ? { ...result, index: restIndex[result.index] ?? result.index } : result, 'batch');
      }
      entries = (result.body as { jobs: object[] }).jobs;
      status = result.status;
    }
    deps.admission.countAll(waitingJobs, 'duplicate', 'idempotency');
    let next = 0;
    const all = at.map((row) => (row !== undefined ? queuedAnswer(row) : entries[next++]));
    return c.json({ jobs: all }, status);
  }

  app.openapi({ ...getRoute, middleware: [deps.auth.middleware] as const }, (c) => getJob(c) as never);
  async function getJob(c: ParamContext<{ jobId: string }>): Promise<Response> {
    const { jobId } = c.req.valid('param');
    if (!isJobId(jobId)) return problem(404, PROBLEM.notFound, 'Job not found', { detail: 'no job with this id for this tenant' });
    let view: JobView | undefined;
    try {
      view = await deps.jobView(c.get('tenant'), jobId);
    } catch {
      return unavailable('PostgreSQL is unreachable');
    }
    if (!view) return problem(404, PROBLEM.notFound, 'Job not found', { detail: `no job "${jobId}" for this tenant` });
    return c.json(view, 200);
  }

  app.openapi({ ...cancelRoute, middleware: [deps.auth.middleware] as const }, (c) => cancelJob(c) as never);
  async function cancelJob(c: ParamContext<{ jobId: string }>): Promise<Response> {
    const { jobId } = c.req.valid('param');
    const tenant = c.get('tenant');
    const notFound = () => problem(404, PROBLEM.notFound, 'Job not found', { detail: `no job "${jobId}" for this tenant` });
    if (!isJobId(jobId)) return notFound();
    const room = deps.room;
    // A job answered 202 a moment ago may not be stored yet (GET is eventually consistent, typically
    // within a second): before answering 404, give the persister that second, so that such a job is
    // 409 (admitted: not cancellable), as CONTRACT says, and not "not the tenant's".
    const storedSoon = async () => {
      for (let waited = 0; waited < STORED_WITHIN_MS; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
        const found = await deps.jobView(tenant, jobId);
        if (found) return found;
      }
      return undefined;
    };
    try {
      // As GET shows it: a status the room decides (queued, retrying) leads to the same cancel as
      // the persister's own (see WaitingStore.cancel).
      let view = await deps.jobView(tenant, jobId);
      if (room === undefined) return (view ?? (await storedSoon())) ? notCancellable('it is not waiting') : notFound();
      // A job between attempts: its next attempt may not be in the room yet (its backoff runs); the
      // cancellation waits there for it.
      const lastAttempt = view?.attempts.reduce((m, a) => Math.max(m, a.attempt), 0) ?? 0;
      const next = view?.status === 'retrying' ? { attempt: lastAttempt + 1, type: view.type, jobPriority: view.priority, createdAt: new Date(view.createdAt) } : undefined;
      // A job the dispatcher is trying right now is back in the room within a moment (or admitted).
      let result = await room.store.cancel(tenant, jobId, next);
      for (let i = 0; i < 20 && result === 'dispatching'; i += 1) {
        await new Promise((r) => setTimeout(r, 25));
        result = await room.store.cancel(tenant, jobId, next);
      }
      switch (result) {
        case 'cancelled':
          deps.metrics.cancellations.inc();
          return c.body(null, 204);
        case 'already_cancelled':
          // cancelled before: nothing changes, nothing more is counted
          return c.body(null, 204);
        case 'dispatching':
          return notCancellable('it is being admitted right now');
        case 'gone':
          return notCancellable('it is no longer waiting (running or finished)');
        case 'not_found':
          view ??= await storedSoon();
          return view ? notCancellable('it is not waiting (running or finished)') : notFound();
      }
    } catch {
      return unavailable('PostgreSQL is unreachable');
    }
  }

  return app;
}
