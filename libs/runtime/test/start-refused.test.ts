// A start that a service refuses (a login NATS does not accept) is not retried as "not reachable
// yet": the app stops at once with status 1 and one line naming what to fix — not an unhandled
// rejection's stack trace (found by an operations audit: the persister printed `AuthorizationError:
// Authorization Violation` and its stack).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAppProcess, startNatsServer, testEnv, testNamespace, type AppName, type NatsServerProcess } from '@janus/testing';

let server: NatsServerProcess;

beforeAll(async () => {
  server = await startNatsServer({ config: 'authorization { user: janus, password: "s3cret_s3cret_s3cret" }' });
});

afterAll(async () => {
  await server?.stop();
});

describe('a start a service refuses', () => {
  it.each(['persister', 'ingress'] as AppName[])('%s: NATS refuses the login → exit 1 with a line naming NATS_USER and NATS_PASSWORD, no stack trace', async (app) => {
    const env = testEnv(testNamespace(`start_refused_${app}`), { NATS_URL: server.url });
    const p = await startAppProcess(app, env, { until: 'healthy', readyTimeoutMs: 30_000 });
    const { code } = await Promise.race([p.exited, new Promise<{ code: number | null }>((r) => setTimeout(() => r({ code: -999 }), 20_000))]);
    expect(code).toBe(1);
    const output = p.output();
    expect(output).toContain(`${app}: could not start: NATS refused the login (check NATS_USER and NATS_PASSWORD)`);
    expect(output).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
  }, 40_000);
});
