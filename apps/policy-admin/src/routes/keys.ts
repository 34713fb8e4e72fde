import { createRoute, z } from '@hono/zod-openapi';
import { Name, StorableText, zodFieldErrors } from '@janus/contracts';
import type { ApiKeyStore, PolicyStore } from '@janus/policy';
import type { PolicyChanges } from '../changes.js';
import { jsonBody } from '../http.js';
import { PROBLEM, fieldErrorsDetail, notFound, problem } from '../problem.js';
import { jsonRequest, ok, problems, security, subApp } from './common.js';

const KeyParams = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'acme' }),
});
const KeyIdParams = KeyParams.extend({ keyId: z.string().openapi({ param: { name: 'keyId', in: 'path' } }) });
const CreateKeyBody = z.strictObject({ label: StorableText.max(200).optional() });

/**
 * Key ids are 12 hex digits (generateApiKey); printable ASCII is all a lookup needs to exclude: an id
 * that is no name or key id cannot exist, and is answered 404 like any unknown one, without asking
 * PostgreSQL (a NUL would be a 5xx there).
 */
const KEY_ID = /^[\x21-\x7e]{1,200}$/;
const knownShape = (tenant: string, keyId?: string) => Name.safeParse(tenant).success && (keyId === undefined || KEY_ID.test(keyId));

/**
 * `/v1/tenants/{id}/keys`: create (the key is shown once; only its SHA-256 is stored), list (never
 * the key), revoke (announced, so every ingress drops it within a second).
 */
export function keyRoutes(deps: { store: PolicyStore; keys: ApiKeyStore; changes: PolicyChanges }) {
  const app = subApp();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/keys',
      tags: ['api-keys'],
      security,
      summary: 'Create an API key for a tenant',
      middleware: [jsonBody({ optional: true })] as const,
      request: { params: KeyParams, body: jsonRequest('CreateApiKey', false) },
      responses: {
        201: { description: '`{ keyId, key, tenant, label, createdAt }`; the key is shown only here', content: { 'application/json': { schema: z.object({ keyId: z.string(), key: z.string() }) } } },
        401: problems[401],
        404: problems[404],
        415: problems[415],
        422: problems[422],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const raw: unknown = c.get('body');
      const body = CreateKeyBody.safeParse(raw ?? {});
      if (!body.success) {
        const errors = zodFieldErrors(body.error.issues);
        return problem(422, PROBLEM.invalidRequest, 'Invalid request', {
          detail: fieldErrorsDetail(errors),
          errors,
        });
      }
      const created = await deps.keys.createKey(id, { actor: c.get('actor'), ...(body.data.label !== undefined ? { label: body.data.label } : {}) });
      if (!created.ok) return notFound(`tenant "${id}" does not exist`);
      await deps.changes.announce(created.version);
      return c.json(
        { keyId: created.keyId, key: created.key, tenant: id, label: body.data.label ?? null, createdAt: created.createdAt.toISOString() },
        201,
      );
    },
  );
  app.openapi(
    createRoute({ method: 'get', path: '/{id}/keys', tags: ['api-keys'], security, summary: "A tenant's API keys (never the keys themselves)", request: { params: KeyParams }, responses: { ...ok('`{ tenant, keys: [{ keyId, label, createdAt, revokedAt }] }`'), 401: problems[401], 404: problems[404] } }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!knownShape(id)) return notFound(`tenant "${id}" does not exist`);
      // As POST: only a tenant of the live policy has keys to list (a removed one's are all revoked).
      if (!Object.hasOwn((await deps.store.current()).document.tenants, id)) return notFound(`tenant "${id}" does not exist`);
      const keys = await deps.keys.listKeys(id);
      return c.json(
        {
          tenant: id,
          keys: keys.map((k) => ({ keyId: k.keyId, label: k.label, createdAt: k.createdAt.toISOString(), revokedAt: k.revokedAt?.toISOString() ?? null, active: k.revokedAt === null })),
        },
        200,
      );
    },
  );
  app.openapi(
    createRoute({ method: 'delete', path: '/{id}/keys/{keyId}', tags: ['api-keys'], security, summary: 'Revoke an API key (every ingress refuses it within a second)', request: { params: KeyIdParams }, responses: { 204: { description: 'Revoked (also when it already was)' }, 401: problems[401], 404: problems[404] } }),
    async (c) => {
      const { id, keyId } = c.req.valid('param');
      if (!knownShape(id, keyId)) return notFound(`tenant "${id}" has no key "${keyId}"`);
      const outcome = await deps.keys.revokeKey(id, keyId, { actor: c.get('actor') });
      if (outcome === 'not_found') return notFound(`tenant "${id}" has no key "${keyId}"`);
      if (outcome === 'revoked') await deps.changes.announce(await deps.store.currentVersion());
      return c.body(null, 204);
    },
  );
  return app;
}

export { CreateKeyBody };
