/**
 * The lease record: one field of its admission call's lease hash. Lease `<call id>_<n>` is field
 * `<n>` of `…:leases:<call id>` (Keys.leaseLocation), which admit-n.lua writes with ONE HSET per
 * call; the hash lives until the call's longest lease has expired plus the retention, and every
 * rewrite of a record extends it (PEXPIRE … GT). Layout of a record, shared with
 * src/lua/includes/lease-record.lua:
 *
 *   st|exp|out|act|fin|adm|att|pri|res|bw|<n>:ten<n>:typ<n>:bk<n>:conc<n>:rate<n>:idem<n>:job ctx
 *
 * The ten `|`-terminated head fields are written by the scripts only (states, numbers, outcome
 * names); the first five change over the lease's life (settle, extend, reap, revoke rewrite them),
 * the rest never do. Every caller-derived text is length-prefixed (`<bytes>:`), and the context is
 * the rest of the string, so no content can be mistaken for structure.
 *   st   pending | withdrawn | active | running | settled | expired | revoked   exp  expiresAt (ms)
 *   out  outcome once settled ('' before)            act  actual cost once settled
 *   fin  finished at; while 'active', the job message's stream sequence (confirm-n.lua)
 *   adm  admitted at   att  attempt   pri  1 high, 2 normal, 3 low
 *   res  budget reserved   bw  budget window start ('' without budget)
 *   ten, typ  tenant and job type     bk  tenant budget key ('' without budget)
 *   conc  concurrency pools held (space-separated keys)
 *   rate  buckets drawn from, comma-separated `key amount capacity refill` (for revoke); a costRate
 *         bucket's entry adds `estimate periodMs` (the job's cost estimate, for settle: the bucket's
 *         share of the actual cost is actual × amount / (estimate × periodMs) units). A job rate's
 *         amount is one job, so it is its periodMs. A costRate window's entry
 *         is `key window amount estimate periodMs limit`: its units (unscaled) counted in the window
 *         pool `key` at expiry adm + periodMs, which settle replaces by actual × amount / estimate.
 *         Records written before have none (settle then leaves the window as it is); the word
 *         `window` keeps earlier versions' revoke and settle from reading it as a bucket.
 *   idem  idempotency keys this admission created (space-separated, for revoke)
 *   job   job id     ctx  caller context ('' for none)
 */
export interface LeaseRecord {
  readonly st: string;
  readonly exp: number;
  readonly out: string;
  /** Actual cost once settled (NaN before). */
  readonly act: number;
  /** Finished at (ms) once finished; while 'active', the job message's stream sequence. */
  readonly fin: string;
  /** Admitted at (ms, Redis time). */
  readonly adm: number;
  readonly att: number;
  readonly res: number;
  readonly ten: string;
  readonly typ: string;
  readonly bk: string;
  readonly conc: readonly string[];
  /** Bucket keys drawn from (the first word of each `rate` entry but windows'). */
  readonly rateKeys: readonly string[];
  /** What settle charges the actual cost to, in record order: costRate buckets (entries with an estimate) and costRate windows (pool keys). */
  readonly costEntries: readonly { readonly key: string; readonly window: boolean }[];
  readonly idem: readonly string[];
  readonly job: string;
  readonly ctx: string;
}

const BAR = 0x7c;
const COLON = 0x3a;

/** Length-prefixed text as the record stores it (byte length, as Lua counts it). */
export function lengthPrefixed(text: string): string {
  return `${Buffer.byteLength(text)}:${text}`;
}

/**
 * One `rate` entry of a record: `key amount capacity refill` (amount and capacity scaled by
 * periodMs, includes/bucket.lua); a costRate bucket's adds `estimate periodMs`, from which settle
 * computes the bucket's share of the actual cost.
 */
export function rateEntry(key: string, scaledAmount: number, scaledCapacity: number, refill: number, cost?: { readonly estimate: number; readonly periodMs: number }): string {
  return `${key} ${scaledAmount} ${scaledCapacity} ${refill}${cost ? ` ${cost.estimate} ${cost.periodMs}` : ''}`;
}

/**
 * A costRate window's `rate` entry: `key window amount estimate periodMs limit` (the job's units in
 * the window pool `key`, unscaled, which leave it periodMs after admission, and the window's limit),
 * for settle. (Entries written before the limit was added have five words: settle then carries no
 * debt into later periods.)
 */
export function windowEntry(key: string, amount: number, estimate: number, periodMs: number, limit: number): string {
  return `${key} window ${amount} ${estimate} ${periodMs} ${limit}`;
}

/** What an active lease's record holds (see the layout above); `pri` is a PRIORITY code. */
export interface ActiveLeaseFields {
  readonly exp: number;
  /** The job message's stream sequence (a confirmed lease's `fin`), if known. */
  readonly fin?: number;
  readonly adm: number;
  readonly att: number;
  readonly pri: number;
  readonly res: number;
  /** Budget window start, undefined without budget. */
  readonly bw: number | undefined;
  readonly ten: string;
  readonly typ: string;
  readonly bk: string;
  readonly conc: readonly string[];
  readonly rate: readonly string[];
  readonly idem: readonly string[];
  readonly job: string;
  readonly ctx: string;
}

/**
 * An active lease's record exactly as admit-n.lua writes it (a state rebuild writes leases back
 * with it, so that settle, extend and reap cannot tell them from any other).
 */
export function formatActiveLeaseRecord(r: ActiveLeaseFields): string {
  const head = `active|${int(r.exp)}|||${r.fin === undefined ? '' : int(r.fin)}|${int(r.adm)}|${int(r.att)}|${int(r.pri)}|${int(r.res)}|${r.bw === undefined ? '' : int(r.bw)}|`;
  return (
    head +
    lengthPrefixed(r.ten) +
    lengthPrefixed(r.typ) +
    lengthPrefixed(r.bk) +
    lengthPrefixed(r.conc.join(' ')) +
    lengthPrefixed(r.rate.join(',')) +
    lengthPrefixed(r.idem.join(' ')) +
    lengthPrefixed(r.job) +
    r.ctx
  );
}

/** An integer as Lua's fmt writes it ('%.0f'). */
function int(n: number): string {
  return Math.round(n).toFixed(0);
}

/** Parses a lease record read with a *Buffer command; undefined when missing or malformed. */
export function parseLeaseRecord(buf: Buffer | null | undefined): LeaseRecord | undefined {
  if (!buf) return undefined;
  const head: string[] = [];
  let pos = 0;
  for (let i = 0; i < 10; i++) {
    const bar = buf.indexOf(BAR, pos);
    if (bar < 0) return undefined;
    head.push(buf.toString('latin1', pos, bar));
    pos = bar + 1;
  }
  const seg: string[] = [];
  for (let i = 0; i < 7; i++) {
    const colon = buf.indexOf(COLON, pos);
    if (colon < 0) return undefined;
    const n = Number(buf.toString('latin1', pos, colon));
    if (!Number.isInteger(n) || colon + 1 + n > buf.length) return undefined;
    seg.push(buf.toString('utf8', colon + 1, colon + 1 + n));
    pos = colon + 1 + n;
  }
  const [st, exp, out, act, fin, adm, att, , res] = head;
  const [ten, typ, bk, conc, rate, idem, job] = seg;
  return {
    st: st!,
    exp: Number(exp),
    out: out!,
    act: act ? Number(act) : Number.NaN,
    fin: fin!,
    adm: Number(adm),
    att: Number(att),
    res: Number(res || 0),
    ten: ten!,
    typ: typ!,
    bk: bk!,
    conc: words(conc!),
    rateKeys: rateEntries(rate!).filter((e) => e[1] !== 'window').map((e) => e[0]!),
    costEntries: rateEntries(rate!)
      .filter((e) => e[1] === 'window' || e.length >= 6)
      .map((e) => ({ key: e[0]!, window: e[1] === 'window' })),
    idem: words(idem!),
    job: job!,
    ctx: buf.toString('utf8', pos),
  };
}

function rateEntries(s: string): string[][] {
  return s.split(',').filter((e) => e.length > 0).map((e) => e.split(' '));
}

function words(s: string): string[] {
  return s.length === 0 ? [] : s.split(' ');
}
