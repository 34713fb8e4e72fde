import { createRoute } from '@hono/zod-openapi';
import { Name, type PolicyDocument } from '@janus/contracts';
import { deleteResource, putResource, singular, type PolicySection, type PolicyStore } from '@janus/policy';
import type { PolicyChanges } from '../changes.js';
import { etag, jsonBody, parseIfMatch } from '../http.js';
import { notFound } from '../problem.js';
import { DryRunQuery, IdParam, NameParam, changeResponse, isDryRun, jsonRequest, ok, problems, security, subApp } from './common.js';

export interface ResourceRouteOptions {
  section: PolicySection;
  /** URL segment and metric label: dependencies, tenants, job-types. */
  resource: string;
  /** The id field of responses: `name`, or `id` for tenants. */
  idField: 'name' | 'id';
  /** OpenAPI component of the body. */
  schemaName: string;
  tag: string;
}

export interface ResourceDeps {
  store: PolicyStore;
  changes: PolicyChanges;
}

/**
 * `GET /`, `GET /{id}`, `PUT /{id}` (If-Match), `DELETE /{id}` (If-Match) for one section of the
 * policy. Responses carry the policy version (and `ETag: "<version>"`).
 */
export function resourceRoutes(deps: ResourceDeps, o: ResourceRouteOptions) {
  const app = subApp();
  const Param = o.idField === 'id' ? IdParam : NameParam;
  const idOf = (p: { name: string } | { id: string }) => ('id' in p ? p.id : p.name);
  const label = singular(o.section);
  const view = (id: string, version: number, object: unknown) => ({ [o.idField]: id, version, ...(object as object) });
  const find = (doc: PolicyDocument, id: string): unknown =>
    Object.hasOwn(doc[o.section], id) ? (doc[o.section] as Record<string, unknown>)[id] : undefined;

  app.openapi(
    createRoute({ method: 'get', path: '/', tags: [o.tag], security, summary: `List ${o.resource}`, responses: { ...ok(`{ version, ${o.section}: { <${o.idField}>: object } }`), 401: problems[401] } }),
    async (c) => {
      const { version, document } = await deps.store.current();
      return c.json({ version, [o.section]: document[o.section] }, 200, etag(version));
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: `/{${o.idField}}`, tags: [o.tag], security, summary: `Read one ${label}`, request: { params: Param }, responses: { ...ok('The object with its id and the policy version'), 401: problems[401], 404: problems[404] } }),
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const { version, document } = await deps.store.current();
      const object = Name.safeParse(id).success ? find(document, id) : undefined;
      if (object === undefined) return notFound(`${label} "${id}" does not exist`);
      return c.json(view(id, version, object), 200, etag(version));
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: `/{${o.idField}}`,
      tags: [o.tag],
      security,
      summary: `Create or replace a ${label}`,
      description:
        'Optional `If-Match: <version>`: 412 when the policy moved on. Returns the stored object (defaults applied) and the new policy version; `?dryRun=true`: `{ dryRun, version, changed, diff }`, nothing stored.',
      middleware: [jsonBody()] as const,
      request: { params: Param, query: DryRunQuery, body: jsonRequest(o.schemaName) },
      responses: { ...ok('The stored object and the new policy version'), 400: problems[400], 401: problems[401], 412: problems[412], 415: problems[415], 422: problems[422] },
    }),
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ifMatch = parseIfMatch(c.req.header('if-match'));
      if (!ifMatch.ok) return ifMatch.response;
      const body: unknown = c.get('body');
      const req = {
        resource: o.resource,
        actor: c.get('actor'),
        action: `${o.resource}.put`,
        target: `${o.resource}/${id}`,
        expectedVersion: ifMatch.expected,
        edit: (doc: PolicyDocument) => putResource(doc, o.section, id, body, deps.changes.extraCheck),
      };
      const result = isDryRun(c.req.valid('query')) ? await deps.changes.preview(req) : await deps.changes.change(req);
      return changeResponse(c, result, (r) => ({ ...view(id, r.version, r.stored), previousVersion: r.previousVersion, changed: r.changed }));
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: `/{${o.idField}}`,
      tags: [o.tag],
      security,
      summary: `Delete a ${label}`,
      description:
        o.section === 'dependencies'
          ? 'A dependency still used by a job type is 422 naming each use. Also drops its pause.'
          : o.section === 'tenants'
            ? "Also revokes the tenant's API keys."
            : 'Also drops its pause.',
      request: { params: Param, query: DryRunQuery },
      responses: { ...ok('The deleted id and the new policy version (`?dryRun=true`: `{ dryRun, version, changed, diff }`, nothing stored)'), 400: problems[400], 401: problems[401], 404: problems[404], 412: problems[412], 422: problems[422] },
    }),
    async (c) => {
      const id = idOf(c.req.valid('param'));
      const ifMatch = parseIfMatch(c.req.header('if-match'));
      if (!ifMatch.ok) return ifMatch.response;
      const req = {
        resource: o.resource,
        actor: c.get('actor'),
        action: `${o.resource}.delete`,
        target: `${o.resource}/${id}`,
        expectedVersion: ifMatch.expected,
        edit: (doc: PolicyDocument) => deleteResource(doc, o.section, id),
      };
      const result = isDryRun(c.req.valid('query')) ? await deps.changes.preview(req) : await deps.changes.change(req);
      return changeResponse(c, result, (r) => ({ [o.idField]: id, deleted: true, version: r.version, previousVersion: r.previousVersion }));
    },
  );

  return app;
}
