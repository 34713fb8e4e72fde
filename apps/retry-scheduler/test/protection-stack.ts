import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PolicyDocumentInput } from '@janus/contracts';
import { apiKeys } from '@janus/db';
import { generateApiKey } from '@janus/policy';
import { startAppProcess, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type JobHandler, type Worker } from '@janus/worker-sdk';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The whole path for the dependency-protection tests (CONTRACT §2 `adaptive`, `retryBudget`, rate
 * `kind`): a namespace of their own with a seeded policy and an API key for tenant `acme`, and the
 * real apps as child processes — `ingress` (one or more), the `retry-scheduler` (outcomes,
 * feedback, the waiting room's dispatcher) and, when asked, the `persister` (GET /v1/jobs/{id}).
 * Workers (the worker SDK) and the dependency (a plain node:http server) run in the test process.
 */
export interface ProtectionStack {
  readonly bed: TestBed;
  readonly apiKey: string;
  readonly ingresses: readonly AppProcess[];
  readonly scheduler: AppProcess;
  readonly persister: AppProcess | undefined;
  /** Starts a worker SDK worker for `jobType` (once the scheduler has created its consumer). */
  worker(jobType: string, handler: JobHandler, concurrency?: number): Promise<Worker>;
  /** Messages in JANUS_DEAD (dead letters) so far. */
  deadLetters(): Promise<number>;
  /** POST /v1/jobs to ingress `target` (an index into `ingresses`, default 0). */
  post(body: Record<string, unknown>, target?: number): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }>;
  close(): Promise<void>;
}

export async function openProtectionStack(label: string, policy: PolicyDocumentInput, opts: { ingresses?: number; persister?: boolean } = {}): Promise<ProtectionStack> {
  const bed = await openTestBed(label, policy);
  const key = generateApiKey();
  await bed.db.db.insert(apiKeys).values({ keyId: key.keyId, tenant: 'acme', keyHash: key.keyHash });
  const env = testEnv(bed.ns, { LOG_LEVEL: 'warn' });
  const started: AppProcess[] = [];
  const workers: Worker[] = [];
  const track = async (p: Promise<AppProcess>) => {
    const app = await p;
    started.push(app);
    return app;
  };
  try {
    const [scheduler, persister, ...ingresses] = await Promise.all([
      track(startAppProcess('retry-scheduler', env)),
      opts.persister === true ? track(startAppProcess('persister', env)) : Promise.resolve(undefined),
      ...Array.from({ length: opts.ingresses ?? 1 }, () => track(startAppProcess('ingress', env))),
    ]);
    return {
      bed,
      apiKey: key.key,
      ingresses: ingresses as AppProcess[],
      scheduler: scheduler as AppProcess,
      persister,
      async worker(jobType, handler, concurrency = 1) {
        const w = await waitFor(() => startWorker({ nc: bed.nc, namespace: bed.ns, jobType, handler, concurrency }).catch(() => undefined), 20_000, 100);
        workers.push(w);
        return w;
      },
      async deadLetters() {
        return (await bed.jsm.streams.info(bed.names.streams.dead)).state.messages;
      },
      async post(body, target = 0) {
        const ingress = ingresses[target % ingresses.length] as AppProcess;
        const res = await fetch(`${ingress.url}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
      },
      async close() {
        await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
        await Promise.all(started.map((p) => p.kill('SIGKILL').catch(() => undefined)));
        await bed.close();
      },
    };
  } catch (error) {
    await Promise.all(started.map((p) => p.kill('SIGKILL').catch(() => undefined)));
    await bed.close();
    throw error;
  }
}

/** A stand-in for the dependency: a node:http server answering each request with `answer(now)`. */
export interface MockApi {
  readonly url: string;
  /** Arrival times (ms) and statuses of every request so far. */
  readonly calls: { at: number; status: number }[];
  close(): Promise<void>;
}

export async function startMockApi(answer: (now: number) => { status: number; headers?: Record<string, string> }): Promise<MockApi> {
  const calls: { at: number; status: number }[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    const now = Date.now();
    const a = answer(now);
    calls.push({ at: now, status: a.status });
    res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers });
    res.end(a.status < 300 ? 'ok' : 'no');
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A handler that calls the dependency and returns its Response (body read), as a real worker would. */
export function callDependency(url: string): JobHandler {
  return async (_job, { signal }) => {
    const res = await fetch(url, { signal });
    const body = await res.arrayBuffer();
    return new Response(body, { status: res.status, headers: res.headers });
  };
}

/** Counts per one-second bucket from `t0`: bucket i covers [t0 + i s, t0 + (i+1) s). */
export function perSecond(times: readonly number[], t0: number, seconds: number): number[] {
  const out = Array.from({ length: seconds }, () => 0);
  for (const t of times) {
    const i = Math.floor((t - t0) / 1000);
    if (i >= 0 && i < seconds) out[i] = (out[i] ?? 0) + 1;
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
