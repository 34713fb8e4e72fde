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
  finish: number;
}

export class FairQueue<J extends QueuedJob = QueuedJob> {
  readonly #tenants = new Map<string, TenantQueue>();
  readonly #index = new Map<string, J>();
  #virtual = 0;
  /** Finish tags of tenants whose queue emptied, still ahead of the virtual time (a tenant that
   * resubmits at once must not restart ahead of its share). */
  readonly #retired = new Map<string, number>();

  constructor(private readonly weightOf: (tenant: string) => number) {}

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
  }

  add(job: J): void {
    const k = key(job.jobId, job.attempt);
    if (this.#index.has(k)) return;
    this.#index.set(k, job);
    let q = this.#tenants.get(job.tenant);
    if (q === undefined) {
      q = { lanes: new Map(), size: 0, finish: this.#retired.get(job.tenant) ?? this.#virtual };
      this.#retired.delete(job.tenant);
      this.#tenants.set(job.tenant, q);
    }
    let lane = q.lanes.get(job.type);
    if (lane === undefined) q.lanes.set(job.type, (lane = [[], [], []]));
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
    let best: { tenant: string; q: TenantQueue; job: J; start: number } | undefined;
    for (const [tenant, q] of this.#tenants) {
      if (blocks.tenant(tenant, now)) continue;
      const job = this.#head(tenant, q, now, blocks, earliestDue);
      if (job === undefined) continue;
      const start = Math.max(this.#virtual, q.finish);
      if (best === undefined || start < best.start || (start === best.start && job.seq < best.job.seq)) best = { tenant, q, job, start };
    }
    if (best === undefined) return undefined;
    const { q, job, start } = best;
    const before = { finish: q.finish };
    q.finish = start + job.units / Math.max(this.weightOf(best.tenant), 1e-9);
    this.#virtual = start;
    this.remove(job.jobId, job.attempt);
    return {
      job,
      // The admission refused it: back in its place, and the tenant's tag as it was.
      undo: () => {
        this.add(job);
        this.#tenants.get(job.tenant)!.finish = before.finish;
      },
    };
  }

  /** The tenant's first job by priority then arrival among its lanes that are open, if due. */
  #head(tenant: string, q: TenantQueue, now: number, blocks: Blocks, earliestDue?: { at: number }): J | undefined {
    let best: QueuedJob | undefined;
    for (const [type, byPriority] of q.lanes) {
      if (blocks.lane(type, now) || blocks.tenantLane(tenant, type, now)) continue;
      for (let p = 0; p < byPriority.length; p += 1) {
        const head = byPriority[p]![0];
        if (head === undefined) continue;
        if (head.dueAt > now) {
          if (earliestDue && head.dueAt < earliestDue.at) earliestDue.at = head.dueAt;
          continue;
        }
        if (best === undefined || head.priority < best.priority || (head.priority === best.priority && head.seq < best.seq)) best = head;
        break;
      }
    }
    return best as J | undefined;
  }

  #tidy(tenant: string, q: TenantQueue, type: string): void {
    const lane = q.lanes.get(type);
    if (lane && lane.every((a) => a.length === 0)) q.lanes.delete(type);
    if (q.size > 0) return;
    this.#tenants.delete(tenant);
    if (q.finish > this.#virtual) this.#retired.set(tenant, q.finish);
    if (this.#retired.size > 10_000) for (const [t, f] of this.#retired) if (f <= this.#virtual) this.#retired.delete(t);
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
