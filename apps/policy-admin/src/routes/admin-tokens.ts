import { createRoute, z } from '@hono/zod-openapi';
import { ProblemDetails, zodFieldErrors } from '@janus/contracts';
import { ADMIN_TOKEN_NAME, ENV_ADMIN_TOKEN_NAME, type AdminTokenStore } from '@janus/policy';
import type { Logger } from '@janus/observability';
import { jsonBody } from '../http.js';
import { PROBLEM, fieldErrorsDetail, notFound, problem } from '../problem.js';
import { jsonRequest, problems, security, subApp } from './common.js';

const NAME_RULE = `must match ${ADMIN_TOKEN_NAME.source}`;
export const CreateAdminTokenBody = z.strictObject({
  name: z.string().regex(ADMIN_TOKEN_NAME, NAME_RULE).openapi({ example: 'alice', description: `The token's name (${NAME_RULE}); the audit log names it as \`token:<name>\`. \`env\` is reserved.` }),
});
const NameParam = z.object({
  name: z
    .string()
    .regex(ADMIN_TOKEN_NAME, NAME_RULE)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'alice' }),
});
const ListQuery = z.object({
  revoked: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: '`true`: also list revoked tokens (with `revokedAt` and `revokedBy`)' }),
});

const CreatedToken = z
  .object({ name: z.string(), token: z.string(), createdAt: z.string(), createdBy: z.string() })
  .openapi('CreatedAdminToken');
const TokenView = z
  .object({
    name: z.string(),
    source: z.enum(['env', 'api']).openapi({ description: '`env`: JANUS_ADMIN_TOKEN (not revocable over the API); `api`: created over the API' }),
    createdAt: z.string().nullable(),
    createdBy: z.string().nullable(),
    lastUsedAt: z.string().nullable().openapi({ description: 'Roughly when it was last used (written at most once a minute per instance); null: not since it was created' }),
    revokedAt: z.string().nullable(),
    revokedBy: z.string().nullable(),
  })
  .openapi('AdminToken');
const TokenList = z.object({ tokens: z.array(TokenView) }).openapi('AdminTokenList');

const problemContent = { 'application/problem+json': { schema: ProblemDetails } };
const conflict = (detail: string) => problem(409, PROBLEM.adminTokenConflict, 'Conflict', { detail });

export interface AdminTokenRoutesDeps {
  readonly store: Pick<AdminTokenStore, 'create' | 'revoke' | 'list'>;
  /** Reloads this instance's token cache (before answering, so the answer holds here at once). */
  readonly refresh: () => Promise<void>;
  /** Tells every instance to reload (`<ns>.config.changed`). */
  readonly announce: () => Promise<void>;
  readonly logger: Logger;
}

/**
 * `/v1/admin/tokens`: named admin tokens besides JANUS_ADMIN_TOKEN (`env`). Create (the token is
 * shown once; only its SHA-256 is stored), list (never a token or a hash), revoke (announced, so
 * every policy-admin instance refuses it within a second). Creating and revoking are audited.
 * Only names are ever logged.
 */
export function adminTokenRoutes(deps: AdminTokenRoutesDeps) {
  const app = subApp();
  const propagate = async () => {
    try {
      await deps.refresh();
    } catch (error) {
      // Stored all the same: the announcement (or the next poll) brings it to this instance too.
      deps.logger.warn({ err: error }, 'could not reload the admin tokens after a change; the next poll will');
    }
    await deps.announce();
  };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['admin-tokens'],
      security,
      summary: 'Create a named admin token (shown only in this answer)',
      middleware: [jsonBody()] as const,
      request: { body: jsonRequest('CreateAdminToken') },
      responses: {
        201: { description: 'The token: store it now, it is shown only here (only its hash is stored)', content: { 'application/json': { schema: CreatedToken } } },
        400: problems[400],
        401: problems[401],
        409: { description: 'An active token already has this name, or it is `env` (reserved)', content: problemContent },
        415: problems[415],
        422: problems[422],
      },
    }),
    async (c) => {
      const body = CreateAdminTokenBody.safeParse(c.get('body'));
      if (!body.success) {
        const errors = zodFieldErrors(body.error.issues);
        return problem(422, PROBLEM.invalidRequest, 'Invalid request', { detail: fieldErrorsDetail(errors), errors });
      }
      const { name } = body.data;
      if (name === ENV_ADMIN_TOKEN_NAME) return conflict('"env" is JANUS_ADMIN_TOKEN\'s name: choose another');
      const actor = c.get('actor');
      const created = await deps.store.create(name, { actor });
      if (!created.ok) return conflict(`an active admin token is already named "${name}": revoke it first or choose another name`);
      await propagate();
      deps.logger.info({ tokenName: name, actor }, 'admin token created');
      return c.json({ name, token: created.token, createdAt: created.createdAt.toISOString(), createdBy: actor }, 201, { 'cache-control': 'no-store' });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['admin-tokens'],
      security,
      summary: 'The admin tokens: JANUS_ADMIN_TOKEN (`env`) and the named ones (never a token or a hash)',
      request: { query: ListQuery },
      responses: { 200: { description: 'Oldest first, `env` first', content: { 'application/json': { schema: TokenList } } }, 400: problems[400], 401: problems[401] },
    }),
    async (c) => {
      const { revoked } = c.req.valid('query');
      const rows = await deps.store.list({ includeRevoked: revoked === 'true' });
      const iso = (d: Date | null) => d?.toISOString() ?? null;
      const tokens: z.infer<typeof TokenView>[] = [
        { name: ENV_ADMIN_TOKEN_NAME, source: 'env', createdAt: null, createdBy: null, lastUsedAt: null, revokedAt: null, revokedBy: null },
        ...rows.map((r) => ({
          name: r.name,
          source: 'api' as const,
          createdAt: r.createdAt.toISOString(),
          createdBy: r.createdBy,
          lastUsedAt: iso(r.lastUsedAt),
          revokedAt: iso(r.revokedAt),
          revokedBy: r.revokedBy,
        })),
      ];
      return c.json({ tokens }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['admin-tokens'],
      security,
      summary: 'Revoke a named admin token (every policy-admin instance refuses it within a second)',
      request: { params: NameParam },
      responses: {
        204: { description: 'Revoked' },
        400: problems[400],
        401: problems[401],
        404: { description: 'No active token has this name (never created, or already revoked)', content: problemContent },
        409: { description: '`env`: JANUS_ADMIN_TOKEN is changed in the environment, not over the API', content: problemContent },
      },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      if (name === ENV_ADMIN_TOKEN_NAME) return conflict('"env" is JANUS_ADMIN_TOKEN: change it in the environment and restart policy-admin');
      const actor = c.get('actor');
      if ((await deps.store.revoke(name, { actor })) === 'not_found') return notFound(`no active admin token is named "${name}"`);
      await propagate();
      deps.logger.info({ tokenName: name, actor }, 'admin token revoked');
      return c.body(null, 204);
    },
  );
  return app;
}
