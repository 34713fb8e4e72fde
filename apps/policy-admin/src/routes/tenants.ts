import { resourceRoutes, type ResourceDeps } from './resource.js';

/** `/v1/tenants`: removing a tenant (here or by PUT /v1/policy) revokes its API keys in the same transaction (PolicyChanges). */
export const tenantRoutes = (deps: ResourceDeps) => resourceRoutes(deps, { section: 'tenants', resource: 'tenants', idField: 'id', schemaName: 'TenantPolicy', tag: 'tenants' });
