import { submissionKey } from './producers.js';

export interface TrackedRun {
  readonly jobId: string;
  readonly attempt: number;
  /** The producer's submission it runs (`id#r`, see Producers), if the payload names one. */
  readonly submission: string | undefined;
  readonly startedAt: number;
  endedAt?: number;
}

/**
 * What workers ran, as a fault test checks it: every run of a job, how many ran at once on each
 * dependency (against its concurrency limit), and whether a job ever ran twice at the same time.
 * A worker calls `start` when its handler begins and the function it returns when it ends (before
 * it reports): the limit holds the slot from admission until the report is settled, so the runs a
 * worker sees at once are never more than the slots held.
 */
export class RunTracker {
  readonly runs: TrackedRun[] = [];
  /** Each time a limit was exceeded or a job ran twice at once, what happened. */
  readonly violations: string[] = [];
  /** The most runs seen at once, per dependency. */
  readonly peak = new Map<string, number>();
  readonly #limits: ReadonlyMap<string, number>;
  readonly #active = new Map<string, number>();
  readonly #activeJobs = new Map<string, number>();

  /** `limits`: each dependency's concurrency limit. */
  constructor(limits: Readonly<Record<string, number>>) {
    this.#limits = new Map(Object.entries(limits));
  }

  start(job: { readonly jobId: string; readonly attempt: number; readonly payload?: unknown }, dependencies: readonly string[]): () => void {
    const run: TrackedRun = { jobId: job.jobId, attempt: job.attempt, submission: submissionKey(job.payload), startedAt: Date.now() };
    this.runs.push(run);
    const same = (this.#activeJobs.get(job.jobId) ?? 0) + 1;
    this.#activeJobs.set(job.jobId, same);
    if (same > 1) this.violations.push(`${job.jobId} (attempt ${job.attempt}) ran while another run of it was running`);
    for (const dep of dependencies) {
      const n = (this.#active.get(dep) ?? 0) + 1;
      this.#active.set(dep, n);
      this.peak.set(dep, Math.max(this.peak.get(dep) ?? 0, n));
      const limit = this.#limits.get(dep);
      if (limit !== undefined && n > limit) this.violations.push(`${job.jobId} (attempt ${job.attempt}) ran as the ${n}th at once on ${dep} (limit ${limit})`);
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      run.endedAt = Date.now();
      this.#activeJobs.set(job.jobId, (this.#activeJobs.get(job.jobId) ?? 1) - 1);
      for (const dep of dependencies) this.#active.set(dep, (this.#active.get(dep) ?? 1) - 1);
    };
  }

  /** The submissions (`id#r`) that ran at least once. */
  ranSubmissions(): Set<string> {
    return new Set(this.runs.flatMap((r) => (r.submission !== undefined ? [r.submission] : [])));
  }

  /** Runs per `jobId.attempt` that happened more than once (a job message run twice). */
  repeatedAttempts(): string[] {
    const seen = new Map<string, number>();
    for (const r of this.runs) seen.set(`${r.jobId}.${r.attempt}`, (seen.get(`${r.jobId}.${r.attempt}`) ?? 0) + 1);
    return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
  }
}
