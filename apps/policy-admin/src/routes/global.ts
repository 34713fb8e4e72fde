import { createRoute } from '@hono/zod-openapi';
import type { PolicyDocument } from '@janus/contracts';
import { putGlobal } from '@janus/policy';
import { etag, jsonBody, parseIfMatch } from '../http.js';
import { DryRunQuery, changeResponse, isDryRun, jsonRequest, ok, problems, security, subApp } from './common.js';
import type { ResourceDeps } from './resource.js';

/** `/v1/global`: global limits and shedding. */
export function globalRoutes(deps: ResourceDeps) {
  const app = subApp();
  app.openapi(
    createRoute({ method: 'get', path: '/', tags: ['global'], security, summary: 'Global limits and shedding', responses: { ...ok('The global object and the policy version'), 401: problems[401] } }),
    async (c) => {
      const { version, document } = await deps.store.current();
      return c.json({ version, ...document.global }, 200, etag(version));
    },
  );
  app.openapi(
    createRoute({
      method: 'put',
      path: '/',
      tags: ['global'],
      security,
      summary: 'Replace global limits and shedding',
      middleware: [jsonBody()] as const,
      request: { query: DryRunQuery, body: jsonRequest('GlobalPolicy') },
      responses: { ...ok('The stored object and the new policy version'), 400: problems[400], 401: problems[401], 412: problems[412], 415: problems[415], 422: problems[422] },
    }),
    async (c) => {
      const ifMatch = parseIfMatch(c.req.header('if-match'));
      if (!ifMatch.ok) return ifMatch.response;
      const body: unknown = c.get('body');
      const req = {
        resource: 'global',
        actor: c.get('actor'),
        action: 'global.put',
        target: 'global',
        expectedVersion: ifMatch.expected,
        edit: (doc: PolicyDocument) => putGlobal(doc, body, deps.changes.extraCheck),
      };
      const result = isDryRun(c.req.valid('query')) ? await deps.changes.preview(req) : await deps.changes.change(req);
      return changeResponse(c, result, (r) => ({ version: r.version, previousVersion: r.previousVersion, changed: r.changed, ...(r.stored as object) }));
    },
  );
  return app;
}
