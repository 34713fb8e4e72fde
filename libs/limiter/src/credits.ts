/**
 * Prepaid credits (CONTRACT §2 Tenant "Credits", docs/credits.md): top-ups and the credits outbox.
 *
 * Every Lua step that moves credits (admit, settle, revoke, reap, top-up) appends the movement to
 * the outbox STREAM `Keys.creditsOutbox` in the same atomic step, so Redis's balance and the
 * ledger cannot disagree about what happened: the ledger is exact by construction, not by a
 * best-effort publish beside the script. A relay (every retry-scheduler instance, one consumer
 * group) publishes each entry to the ledger stream with its entry id as the JetStream msgID, and
 * only then XACKs and XDELs it; entries a dead consumer left pending are claimed after a while.
 */
import { createHash } from 'node:crypto';
import type { CreditLedgerEntry } from '@janus/contracts';
import { CREDITS } from './codes.js';
import { StateLost } from './errors.js';
import type { Clock } from './clock.js';
import type { Keys } from './keys.js';
import type { ScriptStore } from './store.js';
import type { CreditEntry, TopUpResult } from './types.js';

/** The digest of a top-up's Idempotency-Key: 32 hex characters of its SHA-256. */
export function topUpDigest(idempotencyKey: string): string {
  return createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32);
}

/** A top-up's ledger entry id (its JetStream msgID). */
export function topUpEntryId(tenant: string, idempotencyKey: string): string {
  return `topup.${tenant}.${topUpDigest(idempotencyKey)}`;
}

/** An outbox entry as the ledger stream carries it (`account: "credits"`; publish with msgID = `entry.id`). */
export function creditLedgerMessage(e: CreditEntry): CreditLedgerEntry {
  return {
    account: 'credits',
    entryId: e.id,
    tenant: e.tenant,
    kind: e.kind,
    amount: e.amount,
    ...(e.jobId !== undefined ? { jobId: e.jobId } : {}),
    ...(e.attempt !== undefined ? { attempt: e.attempt } : {}),
    ...(e.leaseId !== undefined ? { leaseId: e.leaseId } : {}),
    at: new Date(e.at).toISOString(),
  };
}

const KINDS = new Set<CreditEntry['kind']>(['topup', 'reserve', 'settle', 'overrun', 'release']);

/** An outbox entry's fields (XADD e, t, k, n, j, a, l, at: includes/credits.lua) as a CreditEntry; undefined when malformed. */
export function parseOutboxFields(fields: readonly string[]): CreditEntry | undefined {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  const id = f.get('e');
  const tenant = f.get('t');
  const kind = f.get('k') as CreditEntry['kind'] | undefined;
  const amount = Number(f.get('n'));
  const at = Number(f.get('at'));
  if (!id || !tenant || kind === undefined || !KINDS.has(kind) || !Number.isSafeInteger(amount) || !Number.isFinite(at)) return undefined;
  if (kind === 'topup') return { id, tenant, kind, amount, at };
  const jobId = f.get('j');
  const attempt = Number(f.get('a'));
  const leaseId = f.get('l');
  if (!jobId || !Number.isInteger(attempt) || attempt < 1 || !leaseId) return undefined;
  return { id, tenant, kind, amount, jobId, attempt, leaseId, at };
}

/** One outbox entry read by a consumer: its stream id (to ack) and the movement (undefined: malformed, acked and dropped). */
export interface OutboxItem {
  readonly streamId: string;
  readonly entry: CreditEntry | undefined;
}

type StreamReply = [key: string, items: [id: string, fields: string[]][]][] | null;

/** The credits operations of a Limiter: balances, top-ups and the outbox. */
export class Credits {
  constructor(
    private readonly store: ScriptStore,
    private readonly keys: Keys,
    private readonly clock: Clock,
  ) {}

  /**
   * Tops up a tenant's credits once per Idempotency-Key (credits-topup-4.lua): a repeated key
   * changes nothing and answers the same entry (so its caller can publish it again). Throws
   * StateLost while the state is not trusted (a rebuild sets balances from the ledger).
   */
  async topUp(tenant: string, idempotencyKey: string, amount: number): Promise<TopUpResult> {
    if (!Number.isSafeInteger(amount) || amount < 1) throw new RangeError('a top-up amount is an integer ≥ 1');
    const digest = topUpDigest(idempotencyKey);
    const id = topUpEntryId(tenant, idempotencyKey);
    const r = ((await this.store.run('creditsTopup', [this.keys.credits(tenant), this.keys.creditsTopup(tenant, digest), this.keys.creditsOutbox, this.keys.epoch], [
      this.clock.arg(),
      amount,
      id,
      tenant,
      CREDITS.topupMarkerTtlMs,
    ])) as number[]).map(Number);
    const [applied = 0, balance = 0, reserved = 0, entryAmount = amount, at = 0] = r;
    if (applied < 0) throw new StateLost(0);
    return { applied: applied === 1, balance, reserved, entry: { id, tenant, kind: 'topup', amount: entryAmount, at } };
  }

  /** Creates the consumer group of the outbox (from its start) if it does not exist yet. */
  async ensureGroup(group: string): Promise<void> {
    try {
      await this.store.guard(this.store.redis.xgroup('CREATE', this.keys.creditsOutbox, group, '0', 'MKSTREAM'));
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
  }

  /**
   * Entries for `consumer`: first those it was delivered and did not ack (after a restart), then
   * new ones. Non-blocking.
   */
  async read(group: string, consumer: string, count: number, pendingFirst: boolean): Promise<OutboxItem[]> {
    const reply = (await this.store.guard(
      this.store.redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', this.keys.creditsOutbox, pendingFirst ? '0' : '>'),
    )) as StreamReply;
    return items(reply?.[0]?.[1] ?? []);
  }

  /** Claims entries another consumer was delivered more than `minIdleMs` ago and never acked (it died). */
  async claim(group: string, consumer: string, minIdleMs: number, count: number): Promise<OutboxItem[]> {
    const reply = (await this.store.guard(this.store.redis.xautoclaim(this.keys.creditsOutbox, group, consumer, minIdleMs, '0', 'COUNT', count))) as [string, [string, string[]][]];
    return items((reply?.[1] ?? []).filter((e) => e !== null));
  }

  /**
   * Removes the group's consumers other than `except` that hold nothing (no pending entry) and were
   * idle for `idleMs`: every relay instance joins under a name of its own, so without this each
   * restart would leave one behind. One holding entries stays until they are claimed.
   */
  async removeIdleConsumers(group: string, except: string, idleMs: number): Promise<string[]> {
    const rows = (await this.store.guard(this.store.redis.xinfo('CONSUMERS', this.keys.creditsOutbox, group))) as unknown[][];
    const removed: string[] = [];
    for (const row of rows ?? []) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < row.length; i += 2) info.set(String(row[i]), row[i + 1]);
      const name = String(info.get('name'));
      if (name === except || Number(info.get('pending')) !== 0 || Number(info.get('idle')) < idleMs) continue;
      await this.store.guard(this.store.redis.xgroup('DELCONSUMER', this.keys.creditsOutbox, group, name));
      removed.push(name);
    }
    return removed;
  }

  /** Acknowledges and deletes entries once JetStream has them. */
  async ack(group: string, streamIds: readonly string[]): Promise<void> {
    if (streamIds.length === 0) return;
    await this.store.guard(this.store.redis.multi().xack(this.keys.creditsOutbox, group, ...streamIds).xdel(this.keys.creditsOutbox, ...streamIds).exec());
  }

  /** Entries not yet published and deleted. */
  async outboxLength(): Promise<number> {
    return Number(await this.store.guard(this.store.redis.xlen(this.keys.creditsOutbox)));
  }

  /** A tenant's balance, reserved and the outbox length, read together (MULTI), for reconciliation. */
  async snapshot(tenant: string): Promise<{ account: boolean; balance: number; reserved: number; outbox: number }> {
    const rows = (await this.store.guard(this.store.redis.multi().hmget(this.keys.credits(tenant), 'b', 'r').xlen(this.keys.creditsOutbox).exec())) ?? [];
    const [b, r] = (rows[0]?.[1] as (string | null)[] | undefined) ?? [];
    return { account: b !== null && b !== undefined, balance: Number(b ?? 0), reserved: Number(r ?? 0), outbox: Number(rows[1]?.[1] ?? 0) };
  }
}

function items(raw: readonly [string, string[] | null][]): OutboxItem[] {
  // a deleted entry still pending reads as [id, null]: acked and dropped
  return raw.map(([streamId, fields]) => ({ streamId, entry: fields ? parseOutboxFields(fields) : undefined }));
}

export interface CreditsRelayOptions {
  readonly credits: Credits;
  /** Publishes entries to the ledger stream (msgID = entry id) and resolves once JetStream stored every one. */
  readonly publish: (entries: readonly CreditEntry[]) => Promise<void>;
  /** This instance's consumer name (unique per process). */
  readonly consumer: string;
  readonly group?: string;
  /** Poll interval when the outbox is empty. Default 50 ms. */
  readonly intervalMs?: number;
  /** Entries another consumer left unacked this long are claimed. Default 30 s. */
  readonly claimIdleMs?: number;
  /** Other consumers idle this long and holding nothing are removed from the group. Default 1 h. */
  readonly consumerIdleMs?: number;
  readonly batch?: number;
  readonly onError?: (error: unknown) => void;
}

/** The consumer group every relay instance joins. */
export const CREDITS_RELAY_GROUP = 'credits-relay';

/**
 * Publishes the credits outbox to the ledger stream (every instance runs one; a consumer group
 * shares the entries). An entry is XACKed and XDELed only after JetStream stored it; one published
 * twice (a crash between the publish and the ack, or a top-up's own publish) is deduplicated by
 * its msgID and by the ledger table's primary key.
 */
export class CreditsRelay {
  readonly #o: CreditsRelayOptions;
  readonly #group: string;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;
  #pendingFirst = true;
  #lastClaim = 0;
  #grouped = false;
  published = 0;

  constructor(opts: CreditsRelayOptions) {
    this.#o = opts;
    this.#group = opts.group ?? CREDITS_RELAY_GROUP;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One pass: publishes what the outbox holds (up to a batch per read) until it is empty; returns how many were published. */
  async drain(): Promise<number> {
    const c = this.#o.credits;
    if (!this.#grouped) {
      await c.ensureGroup(this.#group);
      this.#grouped = true;
    }
    const batch = this.#o.batch ?? 256;
    let total = 0;
    const now = Date.now();
    if (now - this.#lastClaim >= Math.min(this.#o.claimIdleMs ?? 30_000, 5_000)) {
      this.#lastClaim = now;
      const claimed = await c.claim(this.#group, this.#o.consumer, this.#o.claimIdleMs ?? 30_000, batch);
      total += await this.#publish(claimed);
      // consumers of instances that are gone, holding nothing (an hour idle: never a live relay's)
      await c.removeIdleConsumers(this.#group, this.#o.consumer, this.#o.consumerIdleMs ?? 3_600_000);
    }
    for (;;) {
      const got = await c.read(this.#group, this.#o.consumer, batch, this.#pendingFirst);
      if (this.#pendingFirst && got.length === 0) {
        this.#pendingFirst = false;
        continue;
      }
      if (got.length === 0) break;
      total += await this.#publish(got);
      if (this.#stopped && total > 0) break;
    }
    return total;
  }

  async #publish(items: readonly OutboxItem[]): Promise<number> {
    if (items.length === 0) return 0;
    const entries = items.flatMap((i) => (i.entry ? [i.entry] : []));
    if (entries.length > 0) await this.#o.publish(entries);
    await this.#o.credits.ack(this.#group, items.map((i) => i.streamId));
    this.published += entries.length;
    return entries.length;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.drain()
        .then((n) => this.#schedule(n > 0 ? 0 : (this.#o.intervalMs ?? 50)))
        .catch((error: unknown) => {
          // a Redis that lost its data lost the group too: create it again
          if (String((error as Error)?.message).includes('NOGROUP')) this.#grouped = false;
          this.#o.onError?.(error);
          this.#schedule(1000);
        });
    }, ms);
    this.#timer.unref?.();
  }
}
