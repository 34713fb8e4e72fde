import { resourceRoutes, type ResourceDeps } from './resource.js';

/** `/v1/job-types`: a job type naming an unknown dependency is 422. Worker consumers follow each change. */
export const jobTypeRoutes = (deps: ResourceDeps) =>
  resourceRoutes(deps, { section: 'jobTypes', resource: 'job-types', idField: 'name', schemaName: 'JobTypePolicy', tag: 'job-types' });
