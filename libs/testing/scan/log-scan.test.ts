import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/processes.js';
import { findSecrets } from '../src/secrets.js';

/**
 * No secret in a log: every line every app wrote during the whole `npm test` run (in-process apps
 * and child processes alike, at level debug: `JANUS_TEST_LOG_LEVEL`) is checked for API keys, lease
 * tokens, admin tokens, bearer credentials, passwords in URLs and the configured test secrets.
 */
const LOG_FILE = process.env.JANUS_LOG_FILE ?? path.join(REPO_ROOT, 'test-output', 'logs', 'test-run.ndjson');
const APPS = ['ingress', 'policy-admin', 'persister', 'retry-scheduler'];

describe('the log lines of the test run', () => {
  const lines = existsSync(LOG_FILE) ? readFileSync(LOG_FILE, 'utf8').split('\n').filter((l) => l.length > 0) : [];

  it('were written, by every app (the scan below is not vacuous)', () => {
    expect(existsSync(LOG_FILE), `${LOG_FILE} is missing: run \`npm test\`, which sets JANUS_LOG_FILE and JANUS_TEST_LOG_LEVEL`).toBe(true);
    expect(lines.length).toBeGreaterThan(1_000);
    const apps = new Set<string>();
    let unreadable = 0;
    for (const line of lines) {
      try {
        const parsed = JSON.parse(line) as { app?: unknown };
        if (typeof parsed.app === 'string') apps.add(parsed.app);
      } catch {
        unreadable += 1;
      }
    }
    expect(unreadable, 'lines that are not one JSON object each (interleaved writes?)').toBe(0);
    expect([...apps].filter((a) => APPS.includes(a)).sort()).toEqual([...APPS].sort());
  });

  it('contain no secret', () => {
    const findings: string[] = [];
    for (const [i, line] of lines.entries()) {
      for (const finding of findSecrets(line)) {
        let where = '';
        try {
          const parsed = JSON.parse(line) as { app?: unknown; msg?: unknown };
          where = `${String(parsed.app)}: ${String(parsed.msg)}`;
        } catch {
          where = 'unparsable line';
        }
        if (findings.length < 30) findings.push(`line ${i + 1} (${where}): ${finding.kind} ${finding.masked}`);
      }
    }
    expect(findings).toEqual([]);
  });
});
