import { loadSettings } from '@janus/config';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { apiKeys, createDb, migrate } from '@janus/db';
import { connectNats, type NatsConnection } from '@janus/messaging';
import { PolicyStore, generateApiKey } from '@janus/policy';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type JobHandler, type Worker } from '@janus/worker-sdk';

/**
 * A Janus of the test file's own: its namespace, a seeded policy and one API key for tenant `acme`,
 * and the real apps as child processes — `ingress` (what the client talks to), the `persister`
 * (so `get`/`list` see admitted jobs) and, when asked, the `retry-scheduler` (outcomes: a job can
 * die, and be replayed). The client under test reaches ingress over HTTP only, as a producer would.
 */
export interface Stack {
  readonly ns: string;
  readonly ingressUrl: string;
  readonly apiKey: string;
  /** A worker SDK worker for `jobType` (once the scheduler has created its consumer). */
  worker(jobType: string, handler: JobHandler): Promise<Worker>;
  close(): Promise<void>;
}

export async function openStack(label: string, policy: PolicyDocumentInput, opts: { scheduler?: boolean } = {}): Promise<Stack> {
  const ns = testNamespace(label);
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  const settings = loadSettings(env);
  await migrate(settings);
  const db = createDb(settings);
  let key: ReturnType<typeof generateApiKey>;
  try {
    const saved = await new PolicyStore(db.db).update(() => PolicyDocument.parse(policy), { actor: 'test', action: 'seed' });
    if (!saved.ok) throw new Error('seeding the policy failed');
    key = generateApiKey();
    await db.db.insert(apiKeys).values({ keyId: key.keyId, tenant: 'acme', keyHash: key.keyHash });
  } finally {
    await db.close();
  }

  const started: AppProcess[] = [];
  const workers: Worker[] = [];
  let nc: NatsConnection | undefined;
  const track = async (p: Promise<AppProcess>) => {
    const app = await p;
    started.push(app);
    return app;
  };
  const close = async () => {
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    await nc?.close().catch(() => undefined);
    await Promise.all(started.map((p) => p.kill('SIGKILL').catch(() => undefined)));
    await dropRedisNamespace(settings.redisUrl, ns);
    await dropNatsNamespace([...settings.natsServers], ns);
    await dropPgNamespace(settings.databaseUrl, ns);
  };
  try {
    const [ingress] = await Promise.all([
      track(startAppProcess('ingress', env)),
      track(startAppProcess('persister', env)),
      opts.scheduler === true ? track(startAppProcess('retry-scheduler', env)) : undefined,
    ]);
    return {
      ns,
      ingressUrl: ingress.url,
      apiKey: key.key,
      async worker(jobType, handler) {
        nc ??= await connectNats(settings, { name: `${label}-worker` });
        const conn = nc;
        const w = await waitFor(() => startWorker({ nc: conn, namespace: ns, jobType, handler }).catch(() => undefined), 20_000, 100);
        workers.push(w);
        return w;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
