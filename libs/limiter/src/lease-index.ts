/**
 * Reads the lease records that members of the lease expiry index name (see reap-n.lua): a member
 * '<call id>@<expiresAt>' stands for every lease of that admission call (one field each of the
 * call's hash), '<lease id>' for one lease written or extended since. A read without atomicity: the
 * scripts that act on a record check it again.
 */
import type { Keys } from './keys.js';
import { parseLeaseRecord, type LeaseRecord } from './lease-record.js';
import type { ScriptStore } from './store.js';

/** The records the members name, as [lease id, record] (undefined: gone or unreadable), in one pipeline. */
export async function readIndexedLeases(store: ScriptStore, keys: Keys, members: readonly string[]): Promise<[string, LeaseRecord | undefined][]> {
  if (members.length === 0) return [];
  const pipeline = store.redis.pipeline();
  const where: ({ readonly callId: string } | { readonly leaseId: string })[] = [];
  for (const member of members) {
    if (member.includes('@')) {
      const callId = member.slice(0, member.lastIndexOf('@'));
      pipeline.hgetallBuffer(keys.leases(callId));
      where.push({ callId });
    } else {
      const at = keys.leaseLocation(member);
      if (!at) continue;
      pipeline.hgetBuffer(at.key, at.field);
      where.push({ leaseId: member });
    }
  }
  const rows = (await store.guard(pipeline.exec())) ?? [];
  return where.flatMap((w, i): [string, LeaseRecord | undefined][] => {
    const value = rows[i]?.[1];
    if ('callId' in w) return Object.entries((value ?? {}) as Record<string, Buffer>).map(([field, buf]) => [`${w.callId}_${field}`, parseLeaseRecord(buf)]);
    return [[w.leaseId, parseLeaseRecord(value as Buffer | null | undefined)]];
  });
}
