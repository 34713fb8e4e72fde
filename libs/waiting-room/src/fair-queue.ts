/**
 * The waiting room's order: start-time fair queueing (SFQ, Goyal et al. 1996) between tenants, by
 * priority then arrival within a tenant.
 *
 * Why SFQ rather than deficit round robin: both give each backlogged tenant capacity in proportion
 * to its weight, in the units the limit counts (a job's `units`: 1, or its cost under a `costRate`).
 * SFQ needs no quantum to tune, serves one job at a time in a strict order (DRR serves a quantum's
 * worth per visit, so a heavy tenant may get several jobs in a row), and a tenant that was idle or
 * blocked by its own limits re-enters at the current virtual time — it cannot bank credit while it
 * waits, and it is not punished either. Cost per pick: a scan of the tenants with waiting jobs
 * (hundreds, not the jobs).
 *
 * Tags: a tenant's next job starts at S = max(V, F) where F is the finish tag of its last job and V
 * the start tag of the last job picked; the tenant with the lowest S is served and its F becomes
 * S + units / weight. Nothing here talks to Redis or PostgreSQL: the dispatcher picks, tries the
 * admission, and gives a refused job back with `putBack` (its tag is restored).
 */

export interface QueuedJob {
  readonly jobId: string;
  readonly attempt: number;
  /** Arrival order (PostgreSQL `seq`). */
  readonly seq: number;
  readonly tenant: string;
  readonly type: string;
  /** 0 high, 1 normal, 2 low. */
  readonly priority: number;
  /** What one admission of it takes of the limit that binds (1, or its cost under a costRate). */
  readonly units: number;
  /** Not admitted before (ms). */
  readonly dueAt: number;
}

/** Why a job cannot be tried now: its lane (job type), its tenant, or its tenant on its lane is blocked. */
export interface Blocks {
  lane(type: string, now: number): boolean;
  tenant(tenant: string, now: number): boolean;
  tenantLane(tenant: string, type: string, now: number): boolean;
}

interface TenantQueue {
  /** Job type → three arrays (by priority), each in arrival order. */
  readonly lanes: Map<string, QueuedJob[][]>;
  size: number;
  /** Finish tag of the tenant's last job picked, per fairness scope (see FairQueue). */
  readonly finish: Map<string, number>;
}

/**
 * Lanes (job types) are what is blocked and picked; tags (finish and virtual times) belong to a
 * fairness scope, the resource the lanes' jobs share: `scopeOf(type)` (by default the job type
 * itself). Job types of one scope share one fair order, so a tenant that spreads its jobs over two
 * job types on one dependency gets one share of that dependency, not two.
 */
export class FairQueue<J extends QueuedJob = QueuedJob> {
  readonly #tenants = new Map<string, TenantQueue>();
  readonly #index = new Map<string, J>();
  /** Virtual time per scope: the start tag of the scope's last job picked. */
  readonly #virtual = new Map<string, number>();
  /** Finish tags (`tenant|scope`) of tenants whose queue in a scope emptied, still ahead of the
   * scope's virtual time (a tenant that resubmits at once must not restart ahead of its share). */
  readonly #retired = new Map<string, number>();

  constructor(
    private readonly weightOf: (tenant: string) => number,
    private readonly scopeOf: (type: string) => string = (type) => type,
  ) {}

  get size(): number {
    return this.#index.size;
  }

  has(jobId: string, attempt: number): boolean {
    return this.#index.has(key(jobId, attempt));
  }

  /** Waiting jobs per tenant (for metrics). */
  sizes(): Map<string, number> {
    return new Map([...this.#tenants].map(([t, q]) => [t, q.size]));
  }

  clear(): void {
    this.#tenants.clear();
    this.#index.clear();
    this.#retired.clear();
    this.#virtual.clear();
  }

  add(job: J): void {
    const k = key(job.jobId, job.attempt);
    if (this.#index.has(k)) return;
    this.#index.set(k, job);
    let q = this.#tenants.get(job.tenant);
    if (q === undefined) {
      q = { lanes: new Map(), size: 0, finish: new Map() };
      this.#tenants.set(job.tenant, q);
    }
    let lane = q.lanes.get(job.type);
    if (lane === undefined) {
      q.lanes.set(job.type, (lane = [[], [], []]));
      const scope = this.scopeOf(job.type);
      const retired = this.#retired.get(`${job.tenant}|${scope}`);
      if (retired !== undefined && !q.finish.has(scope)) q.finish.set(scope, retired);
      this.#retired.delete(`${job.tenant}|${scope}`);
    }
    insertBySeq(lane[clampPriority(job.priority)]!, job);
    q.size += 1;
  }

  /** Takes a job out (cancelled, or gone from the room); false when it was not here. */
  remove(jobId: string, attempt: number): boolean {
    const k = key(jobId, attempt);
    const job = this.#index.get(k);
    if (job === undefined) return false;
    this.#index.delete(k);
    const q = this.#tenants.get(job.tenant)!;
    const arr = q.lanes.get(job.type)![clampPriority(job.priority)]!;
    const i = arr.indexOf(job);
    if (i >= 0) arr.splice(i, 1);
    q.size -= 1;
    this.#tidy(job.tenant, q, job.type);
    return true;
  }

  /**
   * The next job to try, taken out of the queue, or undefined when every waiting job is blocked or
   * not due. `earliestDue` receives the earliest due time among the heads skipped for not being due.
   */
  next(now: number, blocks: Blocks, earliestDue?: { at: number }): { job: J; undo: () => void } | undefined {
    // Each scope (the resource its lanes share) has its own virtual time; across scopes the job
    // whose start tag is least ahead of its scope's virtual time goes first. A scan of the waiting
    // tenants: a lane's own block is the same for every tenant, so it is asked once per call.
    const laneBlocked = new Map<string, boolean>();
    let best: { q: TenantQueue; job: J; scope: string; start: number; lag: number } | undefined;
    for (const [tenant, q] of this.#tenants) {
      if (blocks.tenant(tenant, now)) continue;
      for (const [type, byPriority] of q.lanes) {
        let closed = laneBlocked.get(type);
        if (closed === undefined) laneBlocked.set(type, (closed = blocks.lane(type, now)));
        if (closed || blocks.tenantLane(tenant, type, now)) continue;
        const job = this.#head(byPriority, now, earliestDue);
        if (job === undefined) continue;
        const scope = this.scopeOf(job.type);
        const v = this.#virtual.get(scope) ?? 0;
        const start = Math.max(v, q.finish.get(scope) ?? v);
        const lag = start - v;
        if (best === undefined || lag < best.lag || (lag === best.lag && (job.priority < best.job.priority || (job.priority === best.job.priority && job.seq < best.job.seq)))) {
          best = { q, job, scope, start, lag };
        }
      }
    }
    if (best === undefined) return undefined;
    const { q, job, scope, start } = best;
    const before = { finish: q.finish.get(scope), virtual: this.#virtual.get(scope) ?? 0 };
    q.finish.set(scope, start + job.units / Math.max(this.weightOf(job.tenant), 1e-9));
    this.#virtual.set(scope, start);
    this.remove(job.jobId, job.attempt);
    return {
      job,
      // The admission refused it: back in its place, and the tenant's tag as it was.
      undo: () => {
        this.add(job);
        const again = this.#tenants.get(job.tenant)!;
        if (before.finish === undefined) again.finish.delete(scope);
        else again.finish.set(scope, before.finish);
        // Nor may a refused pick move the virtual time: everyone behind it would tie at its tag.
        this.#virtual.set(scope, Math.min(this.#virtual.get(scope) ?? 0, before.virtual));
      },
    };
  }

  /** A lane's first job by priority then arrival, if due. */
  #head(byPriority: QueuedJob[][], now: number, earliestDue?: { at: number }): J | undefined {
    for (let p = 0; p < byPriority.length; p += 1) {
      const head = byPriority[p]![0];
      if (head === undefined) continue;
      if (head.dueAt > now) {
        if (earliestDue && head.dueAt < earliestDue.at) earliestDue.at = head.dueAt;
        continue;
      }
      return head as J;
    }
    return undefined;
  }

  #tidy(tenant: string, q: TenantQueue, type: string): void {
    const lane = q.lanes.get(type);
    if (lane && lane.every((a) => a.length === 0)) {
      q.lanes.delete(type);
      const scope = this.scopeOf(type);
      // the tenant's tag in the scope retires only when none of its lanes there has jobs left
      if (![...q.lanes.keys()].some((t) => this.scopeOf(t) === scope)) {
        const finish = q.finish.get(scope);
        q.finish.delete(scope);
        if (finish !== undefined && finish > (this.#virtual.get(scope) ?? 0)) this.#retired.set(`${tenant}|${scope}`, finish);
      }
      if (this.#retired.size > 10_000) {
        for (const [k, f] of this.#retired) if (f <= (this.#virtual.get(k.slice(k.indexOf('|') + 1)) ?? 0)) this.#retired.delete(k);
      }
    }
    if (q.size === 0) this.#tenants.delete(tenant);
  }
}

function key(jobId: string, attempt: number): string {
  return `${jobId}.${attempt}`;
}

function clampPriority(p: number): number {
  return p <= 0 ? 0 : p >= 2 ? 2 : 1;
}

/** Arrival order; rows mostly arrive in order, so look from the end. */
function insertBySeq(arr: QueuedJob[], job: QueuedJob): void {
  let i = arr.length;
  while (i > 0 && arr[i - 1]!.seq > job.seq) i -= 1;
  arr.splice(i, 0, job);
}
