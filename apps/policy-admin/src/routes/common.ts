import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ProblemDetails } from '@janus/contracts';
import { validationHook, type JsonBodyEnv } from '@janus/http';
import type { ChangeResult } from '../changes.js';
import { etag } from '../http.js';
import { invalidPolicy, notFound, preconditionFailed } from '../problem.js';

/** `actor`: `token:<name>` of the admin token the request came with (auth); `body`: the parsed JSON body (jsonBody). */
export type AdminEnv = { Variables: { actor: string } & JsonBodyEnv['Variables'] };

/** One sub-app per resource; a failing query/param validator is a 400 problem naming each field. */
export function subApp(): OpenAPIHono<AdminEnv> {
  return new OpenAPIHono<AdminEnv>({ defaultHook: validationHook });
}

export const problemContent = { 'application/problem+json': { schema: ProblemDetails } };
export const problems = {
  400: { description: 'Malformed JSON or invalid query', content: problemContent },
  // Description only (problem+json): a response without content also lets handlers return plain Responses.
  401: { description: 'Missing or wrong admin token (problem+json); after 20 failures from one address within 60 s, 429 `too-many-auth-failures` with Retry-After instead' },
  404: { description: 'Unknown resource', content: problemContent },
  412: { description: 'If-Match names a version the policy has moved on from', content: problemContent },
  415: { description: 'The body is not JSON', content: problemContent },
  422: { description: 'Invalid policy: `errors` lists every bad field; the running policy is unchanged', content: problemContent },
  503: { description: 'A store is unreachable or the policy is not loaded yet; `Retry-After` is set', content: problemContent },
} as const;

export const security = [{ adminToken: [] }];

/** A documented JSON body that is validated by the handler (so that every error, cross-references included, is reported at once). */
export const jsonRequest = (schemaName: string, required = true) => ({
  required,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${schemaName}` } } },
});

export const ok = (description: string) => ({ 200: { description, content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } });

export const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' }, example: 'stripe' }) });
export const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'acme' }) });

/** `?dryRun=true` (or `1`): validate and return the diff; change nothing (every route that changes the policy). */
export const DryRunQuery = z.object({
  dryRun: z.enum(['true', 'false', '1', '0']).optional().openapi({ description: '`true`: validate and return the diff; change nothing' }),
});

export const isDryRun = (q: { dryRun?: string | undefined }): boolean => q.dryRun === 'true' || q.dryRun === '1';

/** The edge mapping of a change: 412, 404, 422 or the result body (a dry run: `{ dryRun, version, changed, diff }`). */
export function changeResponse(c: Context<AdminEnv>, result: ChangeResult, body: (r: Extract<ChangeResult, { kind: 'applied' }>) => object): Response {
  switch (result.kind) {
    case 'conflict':
      return preconditionFailed(result.currentVersion, `the policy is at version ${result.currentVersion}; re-read it and retry`);
    case 'not_found':
      return notFound(result.detail);
    case 'invalid':
      return invalidPolicy(result.errors);
    case 'applied':
      return c.json(body(result), 200, etag(result.version));
    case 'preview':
      return c.json({ dryRun: true, version: result.version, changed: result.changed, diff: result.diff }, 200, etag(result.version));
  }
}
