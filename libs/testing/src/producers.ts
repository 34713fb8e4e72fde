import { z } from 'zod';
import { AdmittedResponse, BatchAdmittedResponse, JobView, QueuedResponse } from '@janus/contracts';

/**
 * Producers as a fault test needs them: they submit jobs over HTTP to any of several ingress
 * instances, single and in batches, some with an `Idempotency-Key`, and keep a ledger of what each
 * submission was answered, so that the test can check the promises (CONTRACT §6) against what the
 * workers ran.
 *
 * A logical job `id` may be submitted several times: submission `r` carries the payload
 * `{ p: id, r }`, so a worker knows which submission it runs (`submissionKey(payload)`).
 * - 202 or 200: answered; the ledger maps the submission to its jobId.
 * - 4xx or 503: refused; the job is submitted again as `r + 1` (after `retryAfterMs`, capped).
 * - No answer (connection reset, timeout): with a key, the SAME submission is sent again (same
 *   body and key) to the next instance until one answers; without a key its fate is unknown (it may
 *   run), and the job is submitted again as `r + 1`.
 * - Connection refused: nothing was received, so the same submission goes to the next instance.
 */
export interface ProducerJob {
  /** The logical job's id (unique in the run). */
  readonly id: string;
  readonly type: string;
}

export interface ProducerRequest {
  readonly jobs: readonly ProducerJob[];
  /** POST /v1/jobs/batch (else /v1/jobs, one job). */
  readonly batch: boolean;
  /** Send an Idempotency-Key (per submission), so that a request without an answer can be sent again. */
  readonly keyed: boolean;
  /** Mode `queue` (single jobs only): a job that cannot be admitted now waits in the room (202 queued). */
  readonly queue?: boolean;
}

export interface ProducerLedger {
  /** `id#r` → jobId, for each submission answered 202 or 200. */
  readonly answered: Map<string, string>;
  /** `id#r` → the status it was refused with (4xx, 503). */
  readonly refused: Map<string, number>;
  /** `id#r` of submissions without a key that got no answer: they may or may not run. */
  readonly unknown: Set<string>;
  /** Logical job ids that were never answered (gave up after `maxSubmissions`). */
  readonly unanswered: Set<string>;
  /** Answers a producer must never get (5xx other than 503, a 4xx other than 429/422-capacity …), with the body. */
  readonly unexpected: string[];
  /** Count of answers by status, and of sends that got no answer or a refused connection. */
  readonly counts: Map<string, number>;
}

export const SubmissionPayload = z.object({ p: z.string(), r: z.number().int() });

/** The ledger key of the submission a job message carries (its payload), or undefined. */
export function submissionKey(payload: unknown): string | undefined {
  const parsed = SubmissionPayload.safeParse(payload);
  return parsed.success ? `${parsed.data.p}#${parsed.data.r}` : undefined;
}

const Rejected = z.object({ retryAfterMs: z.number().optional() });
/** A single job's 202/200: admitted (CONTRACT §3) or queued (mode `queue`). */
const SingleAnswer = z.union([AdmittedResponse, QueuedResponse]);

export interface ProducersOptions {
  /** The ingress base URLs to send to, asked on every send (a test may change them). */
  readonly targets: () => readonly string[];
  readonly apiKey: string;
  /** Requests in flight at once (default 6). */
  readonly concurrency?: number;
  /** A send without an answer after this long counts as no answer (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** Give a logical request up after this many submissions (default 400). */
  readonly maxSubmissions?: number;
  /** The longest wait after a 429 or 503 before the next submission (default 500 ms). */
  readonly maxBackoffMs?: number;
}

type SendResult =
  | { readonly kind: 'answer'; readonly status: number; readonly body: unknown }
  | { readonly kind: 'no_answer' }
  | { readonly kind: 'refused_connection' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Producers {
  readonly ledger: ProducerLedger = { answered: new Map(), refused: new Map(), unknown: new Set(), unanswered: new Set(), unexpected: [], counts: new Map() };
  readonly #opts: ProducersOptions;
  readonly #inFlight = new Map<string, number>();
  #next = 0;

  constructor(opts: ProducersOptions) {
    this.#opts = opts;
  }

  /** Requests in flight to `target` now. */
  inFlight(target: string): number {
    return this.#inFlight.get(target) ?? 0;
  }

  /** Logical jobs answered so far. */
  get answeredJobs(): number {
    return this.ledger.answered.size;
  }

  /** Sends every request (up to `concurrency` at once) until each is answered or given up. */
  async run(requests: readonly ProducerRequest[]): Promise<ProducerLedger> {
    let i = 0;
    const lane = async () => {
      while (i < requests.length) {
        const request = requests[i++]!;
        await this.#submitUntilAnswered(request);
      }
    };
    await Promise.all(Array.from({ length: this.#opts.concurrency ?? 6 }, lane));
    return this.ledger;
  }

  #count(what: string): void {
    this.ledger.counts.set(what, (this.ledger.counts.get(what) ?? 0) + 1);
  }

  async #submitUntilAnswered(request: ProducerRequest): Promise<void> {
    const max = this.#opts.maxSubmissions ?? 400;
    for (let r = 0; r < max; r++) {
      const keys = request.jobs.map((j) => `${j.id}#${r}`);
      const jobs = request.jobs.map((j) => ({ type: j.type, payload: { p: j.id, r } }));
      const idempotencyKey = request.keyed ? `idem-${request.jobs[0]!.id}-${r}` : undefined;
      const path = request.batch ? '/v1/jobs/batch' : '/v1/jobs';
      const body = request.batch ? { jobs } : { ...jobs[0]!, ...(request.queue === true ? { mode: 'queue' } : {}) };
      // The same submission until some instance answers it (or, without a key, until it is unknown).
      let answer: { status: number; body: unknown } | undefined;
      let resent = false;
      for (let tries = 0; answer === undefined; tries++) {
        const sent = await this.#send(path, body, idempotencyKey);
        if (sent.kind === 'answer' && sent.status === 409 && idempotencyKey !== undefined) {
          // idempotency-key-in-progress: the first request with this key is still being admitted
          // (or its instance died and its admission is pending until it expires): ask again.
          this.#count('in_progress_409');
          await sleep(250);
        } else if (sent.kind === 'answer') answer = sent;
        else if (sent.kind === 'refused_connection') await sleep(Math.min(50 * (tries + 1), 250));
        else if (idempotencyKey !== undefined) {
          resent = true;
          await sleep(100);
        } else break;
        if (tries > 400) break;
      }
      // What a submission sent again with its key after getting no answer was answered.
      if (resent && answer !== undefined) this.#count(`resent_${answer.status}`);
      if (answer === undefined) {
        for (const k of keys) this.ledger.unknown.add(k);
        continue;
      }
      const { status } = answer;
      this.#count(String(status));
      if (status === 200 || status === 202) {
        const ids = request.batch ? BatchAdmittedResponse.parse(answer.body).jobs.map((j) => j.jobId) : [SingleAnswer.parse(answer.body).jobId];
        if (!request.batch && (answer.body as { status?: unknown }).status === 'queued') this.#count('queued');
        if (status === 200) this.#count('duplicate');
        keys.forEach((k, n) => this.ledger.answered.set(k, ids[n]!));
        return;
      }
      for (const k of keys) this.ledger.refused.set(k, status);
      if (status === 429 || status === 503) {
        const wait = Rejected.safeParse(answer.body);
        await sleep(Math.min(this.#opts.maxBackoffMs ?? 500, Math.max(20, (wait.success ? wait.data.retryAfterMs : undefined) ?? 200)));
        continue;
      }
      this.ledger.unexpected.push(`${status} ${JSON.stringify(answer.body)}`);
      return;
    }
    for (const j of request.jobs) this.ledger.unanswered.add(j.id);
  }

  async #send(path: string, body: unknown, idempotencyKey: string | undefined): Promise<SendResult> {
    const targets = this.#opts.targets();
    const target = targets[this.#next++ % targets.length]!;
    this.#inFlight.set(target, this.inFlight(target) + 1);
    try {
      const res = await fetch(`${target}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.#opts.apiKey}`,
          'content-type': 'application/json',
          ...(idempotencyKey !== undefined ? { 'idempotency-key': idempotencyKey } : {}),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#opts.requestTimeoutMs ?? 10_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      return { kind: 'answer', status: res.status, body: parsed };
    } catch (error) {
      if (connectionRefused(error)) {
        this.#count('connection_refused');
        return { kind: 'refused_connection' };
      }
      this.#count('no_answer');
      return { kind: 'no_answer' };
    } finally {
      this.#inFlight.set(target, this.inFlight(target) - 1);
    }
  }
}

function connectionRefused(error: unknown): boolean {
  const cause = error instanceof Error ? (error as Error & { cause?: unknown }).cause : undefined;
  return typeof cause === 'object' && cause !== null && 'code' in cause && (cause as { code: unknown }).code === 'ECONNREFUSED';
}

/**
 * GET /v1/jobs/{jobId} for each job (a few at once): the views that exist (a job the persister has
 * not stored yet is absent).
 */
export async function fetchJobViews(target: string, apiKey: string, jobIds: readonly string[], concurrency = 16): Promise<Map<string, JobView>> {
  const views = new Map<string, JobView>();
  let i = 0;
  const lane = async () => {
    while (i < jobIds.length) {
      const jobId = jobIds[i++]!;
      const res = await fetch(`${target}/v1/jobs/${encodeURIComponent(jobId)}`, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
      if (res?.status === 200) views.set(jobId, JobView.parse(await res.json()));
      else await res?.body?.cancel();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return views;
}
