import { jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { pino } from 'pino';
import { loadSettings, type Settings } from '@janus/config';
import type { PolicyDocumentInput } from '@janus/contracts';
import { apiKeys } from '@janus/db';
import { JobView, PolicyDocument } from '@janus/contracts';
import { announceConfigChange, generateApiKey } from '@janus/policy';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, testEnv, waitFor } from '@janus/testing';
import { Dispatcher, type DispatcherEvents } from '@janus/waiting-room';
import { startIngress, type Ingress } from '../src/ingress.js';

export { waitFor } from '@janus/testing';

export async function start(ns: string, extraEnv: Record<string, string> = {}, opts: { publishTimeoutMs?: number } = {}): Promise<Ingress> {
  const settings = loadSettings(testEnv(ns, extraEnv));
  const ingress = await startIngress(settings, { logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), ...opts });
  // The app answers 503 until Redis is connected (no offline queue); a test's first call must not race that.
  await waitFor(() => ingress.runtime.redis.status === 'ready', 10_000, 20);
  await ingress.limiter.init({ fresh: true });
  return ingress;
}

/** The waiting room's dispatcher on an ingress's connections, started and leading (as the retry-scheduler runs it). */
export async function startDispatcher(ingress: Ingress, namespace: string, events: DispatcherEvents = {}, leadingWithinMs = 5_000): Promise<Dispatcher> {
  const rt = ingress.runtime;
  const dispatcher = new Dispatcher({ namespace, db: rt.db.db, pool: rt.db.pool, limiter: ingress.limiter, js: rt.js, nc: rt.nc, names: rt.names, leadershipPollMs: 200, events });
  dispatcher.start();
  await waitFor(() => dispatcher.leading, leadingWithinMs);
  return dispatcher;
}

/** Polls `GET /v1/jobs/{jobId}` as the tenant of `key` until the job's view passes `ok`; resolves with it. */
export function viewWhen(ingress: Ingress, key: string, jobId: string, ok: (v: JobView) => boolean, ms = 30_000): Promise<JobView> {
  return waitFor(async () => {
    const res = await ingress.app.request(`/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${key}` } });
    if (res.status !== 200) return undefined;
    const v = JobView.parse(await res.json());
    return ok(v) ? v : undefined;
  }, ms, 100);
}

/** Stores a new policy version, announces it, and waits until every given ingress runs it. */
export async function setPolicy(ingresses: readonly Ingress[], doc: PolicyDocumentInput): Promise<number> {
  const first = ingresses[0]!;
  const saved = await first.runtime.policyStore.update(() => PolicyDocument.parse(doc), { actor: 'test', action: 'policy.put' });
  if (!saved.ok) throw new Error('policy write failed');
  await announceConfigChange(first.runtime.nc, first.runtime.names, saved.policy.version);
  await waitFor(() => ingresses.every((i) => i.limiter.policy.version === saved.policy.version && i.runtime.policy.version === saved.policy.version));
  return saved.policy.version;
}

/** Inserts a key for `tenant` and waits until every ingress knows it. */
export async function createKey(ingresses: readonly Ingress[], tenant: string): Promise<{ key: string; keyId: string }> {
  const first = ingresses[0]!;
  const k = generateApiKey();
  await first.runtime.db.db.insert(apiKeys).values({ keyId: k.keyId, tenant, keyHash: k.keyHash });
  await announceConfigChange(first.runtime.nc, first.runtime.names, first.runtime.policy.version);
  await waitFor(() => ingresses.every((i) => i.keys.lookup(k.key) !== undefined));
  return { key: k.key, keyId: k.keyId };
}

export async function cleanup(settings: Settings, ns: string): Promise<void> {
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
}

/** Every message currently stored on a subject (reads the stream directly, consuming nothing). */
export async function storedMessages(ingress: Ingress, stream: string, subject: string): Promise<{ msgID: string | undefined; body: Record<string, unknown> }[]> {
  const jsm = await jetstreamManager(ingress.runtime.nc);
  const info = await jsm.streams.info(stream);
  const out: { msgID: string | undefined; body: Record<string, unknown> }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (!m || m.subject !== subject) continue;
    out.push({ msgID: m.header?.get('Nats-Msg-Id'), body: m.json<Record<string, unknown>>() });
  }
  return out;
}

export type { JsMsg };

export function json(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}
