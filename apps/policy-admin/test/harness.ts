import { pino } from 'pino';
import type { Hono } from 'hono';
import { loadSettings, type Settings } from '@janus/config';
import type { Limiter } from '@janus/limiter';
import type { LimiterRuntime } from '@janus/runtime';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, testEnv, testNamespace } from '@janus/testing';
import { startPolicyAdmin, type PolicyAdmin, type PolicyAdminOptions } from '../src/admin.js';
import type { AdmissionHistoryOptions } from '../src/dashboard/admission-history.js';
import type { DependencyHistoryOptions } from '../src/dashboard/history.js';

export const TOKEN = 'test-admin-token-0123456789';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

// Test-only: response bodies are asserted on field by field, so they are typed loosely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

export interface AdminHarness {
  ns: string;
  settings: Settings;
  rt: LimiterRuntime;
  app: Hono;
  limiter: Limiter;
  /** The dashboard's dependency-state sampler. */
  history: PolicyAdmin['history'];
  /** This instance's cache of the named admin tokens. */
  adminTokens: PolicyAdmin['adminTokens'];
  /** JSON request with the admin token; `body` is JSON-encoded unless it is a string. The response body is loosely typed for assertions. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Loose; headers: Headers }>;
  /** Stops this instance, leaving the namespace (for a second instance sharing it). */
  stop(): Promise<void>;
  /** Stops this instance and drops its namespace. */
  close(): Promise<void>;
}

/** policy-admin as main.ts starts it (startPolicyAdmin), in its own namespace, on the real services. */
export async function startAdmin(
  label: string,
  opts: { ns?: string; dashboardWindowSeconds?: number; dependencyHistory?: DependencyHistoryOptions; admissionHistory?: AdmissionHistoryOptions; clientAddress?: PolicyAdminOptions['clientAddress']; logger?: PolicyAdminOptions['logger'] } = {},
): Promise<AdminHarness> {
  const ns = opts.ns ?? testNamespace(label);
  const settings = loadSettings(testEnv(ns, { JANUS_ADMIN_TOKEN: TOKEN }));
  const admin = await startPolicyAdmin(settings, {
    logger: opts.logger ?? pino({ level: 'silent' }),
    dbPoolSize: 25,
    ...(opts.dashboardWindowSeconds !== undefined ? { dashboardWindowSeconds: opts.dashboardWindowSeconds } : {}),
    ...(opts.dependencyHistory !== undefined ? { dependencyHistory: opts.dependencyHistory } : {}),
    ...(opts.admissionHistory !== undefined ? { admissionHistory: opts.admissionHistory } : {}),
    ...(opts.clientAddress !== undefined ? { clientAddress: opts.clientAddress } : {}),
  });
  const { app, runtime: rt } = admin;
  return {
    ns,
    settings,
    rt,
    app,
    limiter: admin.limiter,
    history: admin.history,
    adminTokens: admin.adminTokens,
    async call(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...AUTH, ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        init.headers = { 'content-type': 'application/json', ...AUTH, ...headers };
      }
      const res = await app.request(path, init);
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      await admin.close();
    },
    async close() {
      await admin.close();
      await dropRedisNamespace(settings.redisUrl, ns);
      await dropNatsNamespace([...settings.natsServers], ns);
      await dropPgNamespace(settings.databaseUrl, ns);
    },
  };
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 2): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await predicate()) return performance.now() - started;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
