import type { ChildProcess } from 'node:child_process';

type Env = Record<string, string | undefined>;
export interface AppSpec {
  readonly name: 'ingress' | 'policy-admin' | 'persister' | 'retry-scheduler';
  readonly color: number;
  readonly portVar: string;
  readonly port: number;
}
export interface RunningApp extends AppSpec {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
/** The repository root and its git-ignored state folder (`.janus/`). */
export const root: string;
export const stateDir: string;
export const APPS: readonly AppSpec[];
/** The port an app listens on under this environment. */
export function portOf(app: AppSpec, env: Env): number;
/** Where to reach an app: its JANUS_HOST, or 127.0.0.1 when it listens on every address. */
export function urlOf(app: AppSpec, env: Env): string;
/** JANUS_ADMIN_TOKEN, else the token kept in `.janus/admin-token` (created on first use). */
export function devAdminToken(env: Env): { token: string; source: string };
/** `npm start -- --nats-auth`: the port and state folder of the auth-enabled nats-server. */
export const NATS_AUTH_PORT: number;
export const natsAuthDir: string;
/** Letters, digits and `_`, starting with a letter, 16 or more: what nats-server reads from its environment as text. */
export const NATS_PASSWORD_SHAPE: RegExp;
/** The two users' passwords (JANUS_NATS_PASSWORD / JANUS_WORKER_NATS_PASSWORD, else kept in `.janus/nats-auth/`). */
export function natsAuthEnv(env: Env): {
  url: string;
  app: { password: string; source: string };
  worker: { password: string; source: string };
  serverEnv: { JANUS_NATS_PASSWORD: string; JANUS_WORKER_NATS_PASSWORD: string };
  appEnv: { NATS_URL: string; NATS_USER: 'janus'; NATS_PASSWORD: string };
};
/** The environment the apps of one run share: the admin token (none outside development without JANUS_ADMIN_TOKEN) and the log format. */
export function appsEnv(env: Env, options?: { logFormat?: 'json' | 'pretty' }): { admin: { token: string; source: string } | undefined; env: Env };
/** Starts every app, each in its own process group; output lines go to `write`, prefixed. */
export function spawnApps(env: Env, write?: (line: string) => void): RunningApp[];
/** SIGTERM to each app once, SIGKILL after `graceMs`; resolves with how each ended. */
export function stopApps(children: readonly RunningApp[], graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }[]>;
/** Resolves when every app answers 200 on /readyz; rejects after `timeoutMs`. */
export function waitReady(env: Env, timeoutMs?: number, apps?: readonly AppSpec[]): Promise<void>;
