/**
 * What the cluster tests share: a policy-admin call, a job submitted over HTTP, and which Redis
 * primary serves a slot (asked of the cluster's live nodes, not a client's cached map).
 */
import { Redis } from 'ioredis';
// tools/scripts holds plain Node scripts (no Nx project).
// eslint-disable-next-line @nx/enforce-module-boundaries
import { redisNodePorts } from '../../scripts/cluster-layout.mjs';

/** POST /v1/jobs of one job: its status (0: no answer within 10 s). */
export async function submit(ingressUrl: string, key: string, type: string): Promise<number> {
  const res = await fetch(`${ingressUrl}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type, priority: 'high' }),
    signal: AbortSignal.timeout(10_000),
  }).catch(() => undefined);
  await res?.arrayBuffer();
  return res?.status ?? 0;
}

/** A policy-admin call with the admin token: its JSON answer; a status of 300 or more throws. */
export async function adminCall(adminUrl: string, token: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as unknown;
}

export const count = (statuses: readonly number[], status: number): number => statuses.filter((s) => s === status).length;

/** The primary port that serves a key's slot now, as the first live node tells (the cluster's own view, not a client's cache). */
export async function primaryOf(key: string): Promise<number> {
  for (const port of redisNodePorts(true)) {
    const node = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    node.on('error', () => {}); // a killed node refuses: connect() rejects, that is enough
    try {
      await node.connect();
      const slot = Number(await node.cluster('KEYSLOT', key));
      const range = (await node.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to);
      const primary = range?.[2];
      if (primary) return primary[1];
    } catch {
      // down: ask the next one
    } finally {
      node.disconnect();
    }
  }
  throw new Error(`no live node knows who serves ${key}`);
}
