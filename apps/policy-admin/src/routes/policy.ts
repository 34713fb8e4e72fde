import { createRoute, z } from '@hono/zod-openapi';
import { diffPolicies, replacePolicy } from '@janus/policy';
import { etag, jsonBody, parseIfMatch } from '../http.js';
import { invalidPolicy, preconditionFailed } from '../problem.js';
import { changeResponse, jsonRequest, ok, problems, security, subApp } from './common.js';
import type { ResourceDeps } from './resource.js';

const PutQuery = z.object({
  dryRun: z.enum(['true', 'false', '1', '0']).optional().openapi({ description: '`true`: validate and return the diff; change nothing' }),
});

const VERSION_ERROR = { path: 'version', message: 'must be an integer: the version read with GET /v1/policy (or leave it out)' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `/v1/policy`: the whole declarative policy. GET returns `{ version, dependencies, tenants,
 * jobTypes, global }`; PUT takes the document (a top-level `version`, as GET returns it, is taken
 * as the expected version when there is no If-Match, so GET → edit → PUT cannot lose an update; a
 * `version` that is not an integer is 422 naming it, with the document's other problems).
 */
export function policyRoutes(deps: ResourceDeps) {
  const app = subApp();
  app.openapi(
    createRoute({ method: 'get', path: '/', tags: ['policy'], security, summary: 'The whole live policy and its version', responses: { ...ok('`{ version, dependencies, tenants, jobTypes, global }`'), 401: problems[401] } }),
    async (c) => {
      const { version, document } = await deps.store.current();
      return c.json({ version, ...document }, 200, etag(version));
    },
  );
  app.openapi(
    createRoute({
      method: 'put',
      path: '/',
      tags: ['policy'],
      security,
      summary: 'Replace the whole policy (declarative); `?dryRun=true` returns the diff only',
      middleware: [jsonBody()] as const,
      request: { query: PutQuery, body: jsonRequest('PolicyDocument') },
      responses: { ...ok('`{ version, previousVersion, changed, diff, ...document }`, or for a dry run `{ dryRun, version, changed, diff }`'), 400: problems[400], 401: problems[401], 412: problems[412], 415: problems[415], 422: problems[422] },
    }),
    async (c) => {
      const { dryRun } = c.req.valid('query');
      const ifMatch = parseIfMatch(c.req.header('if-match'));
      if (!ifMatch.ok) return ifMatch.response;
      const raw: unknown = c.get('body');
      let expected = ifMatch.expected;
      let body = raw;
      if (isRecord(raw) && Object.hasOwn(raw, 'version')) {
        const { version, ...rest } = raw;
        body = rest;
        // Not an integer: never "no version" (that would skip the stale check and apply the document).
        if (!Number.isSafeInteger(version)) {
          deps.changes.count('policy', 'invalid');
          const edit = replacePolicy(body, deps.changes.extraCheck);
          return invalidPolicy([VERSION_ERROR, ...(edit.ok || edit.status !== 422 ? [] : edit.errors)]);
        }
        if (expected === undefined) expected = version as number;
      }
      if (dryRun === 'true' || dryRun === '1') {
        const current = await deps.store.current();
        if (expected !== undefined && expected !== current.version) {
          deps.changes.count('policy', 'conflict');
          return preconditionFailed(current.version, `the policy is at version ${current.version}; re-read it and retry`);
        }
        const edit = replacePolicy(body, deps.changes.extraCheck);
        if (!edit.ok) {
          deps.changes.count('policy', 'invalid');
          return edit.status === 422 ? invalidPolicy(edit.errors) : invalidPolicy([]);
        }
        deps.changes.count('policy', 'dry_run');
        const diff = diffPolicies(current.document, edit.document);
        return c.json({ dryRun: true, version: current.version, changed: diff.length > 0, diff }, 200, etag(current.version));
      }
      const result = await deps.changes.change({
        resource: 'policy',
        actor: c.get('actor'),
        action: 'policy.put',
        target: 'policy',
        expectedVersion: expected,
        edit: () => replacePolicy(body, deps.changes.extraCheck),
      });
      return changeResponse(c, result, (r) => ({ version: r.version, previousVersion: r.previousVersion, changed: r.changed, diff: r.diff, ...r.document }));
    },
  );
  return app;
}
