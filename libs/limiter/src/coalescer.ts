/**
 * Coalescing of admission requests into script calls. Requests that arrive together leave in one
 * call (Redis time follows the keys a call touches, not the number of calls), a call leaves as soon
 * as it holds `coalesceJobs` jobs or at the next tick, and at most `maxCallsInFlight` calls are out:
 * further requests wait and leave together when one returns, so under load calls grow instead of
 * multiplying. What a call sends is the caller's business (`send`).
 */

/** At most this many jobs in one admission request, and in one script call. */
export const MAX_BATCH = 1000;

export interface CoalescingOptions {
  /** At most this many jobs per call (a request always goes whole). Default and maximum MAX_BATCH. */
  readonly maxJobsPerCall?: number | undefined;
  /** A call leaves as soon as it holds this many jobs, without waiting for the next tick. Default 32. */
  readonly coalesceJobs?: number | undefined;
  /** Calls out at once. Default 4. */
  readonly maxCallsInFlight?: number | undefined;
}

/** A request waiting for its call, and how to answer it. */
export interface Pending<Req, Res> {
  readonly request: Req;
  readonly resolve: (result: Res) => void;
  readonly reject: (error: unknown) => void;
}

export class Coalescer<Req extends { readonly jobs: readonly unknown[] }, Res> {
  readonly #maxJobsPerCall: number;
  readonly #coalesceJobs: number;
  readonly #maxCallsInFlight: number;
  #queue: Pending<Req, Res>[] = [];
  #queuedJobs = 0;
  #scheduled = false;
  #inFlight = 0;

  /** `send` answers every request of its batch; if it throws, the requests it left unanswered get the error. */
  constructor(
    opts: CoalescingOptions,
    private readonly send: (batch: Pending<Req, Res>[]) => Promise<void>,
  ) {
    this.#maxJobsPerCall = Math.min(opts.maxJobsPerCall ?? MAX_BATCH, MAX_BATCH);
    this.#coalesceJobs = Math.max(1, Math.min(opts.coalesceJobs ?? 32, this.#maxJobsPerCall));
    this.#maxCallsInFlight = Math.max(1, opts.maxCallsInFlight ?? 4);
  }

  submit(request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#queuedJobs += request.jobs.length;
      if (this.#queuedJobs >= this.#coalesceJobs) {
        this.#flush();
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#flush();
        });
      }
    });
  }

  /** Sends what is queued, at most maxJobsPerCall jobs per call, while fewer than maxCallsInFlight calls are out. */
  #flush(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#maxCallsInFlight) {
      let jobs = 0;
      let k = 0;
      while (k < this.#queue.length) {
        const m = this.#queue[k]!.request.jobs.length;
        if (k > 0 && jobs + m > this.#maxJobsPerCall) break;
        jobs += m;
        k += 1;
      }
      const batch = this.#queue.splice(0, k);
      this.#queuedJobs -= jobs;
      this.#inFlight += 1;
      void this.send(batch)
        .catch((error: unknown) => {
          for (const p of batch) p.reject(error);
        })
        .finally(() => {
          this.#inFlight -= 1;
          this.#flush();
        });
    }
  }
}
