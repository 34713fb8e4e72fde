import { resourceRoutes, type ResourceDeps } from './resource.js';

/** `/v1/dependencies`: the shared systems to protect. */
export const dependencyRoutes = (deps: ResourceDeps) =>
  resourceRoutes(deps, { section: 'dependencies', resource: 'dependencies', idField: 'name', schemaName: 'DependencyPolicy', tag: 'dependencies' });
