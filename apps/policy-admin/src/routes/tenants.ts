import { ApiKeyStore } from '@janus/policy';
import { resourceRoutes, type ResourceDeps } from './resource.js';

/** `/v1/tenants`: deleting a tenant revokes its API keys in the same transaction. */
export const tenantRoutes = (deps: ResourceDeps) =>
  resourceRoutes(deps, {
    section: 'tenants',
    resource: 'tenants',
    idField: 'id',
    schemaName: 'TenantPolicy',
    tag: 'tenants',
    onDelete: async (tx, id) => void (await ApiKeyStore.revokeTenantKeys(tx, id)),
  });
