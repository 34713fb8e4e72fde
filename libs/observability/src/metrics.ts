import { collectDefaultMetrics, Registry } from 'prom-client';

/** One registry per app instance, with Node's default metrics and an `app` label on everything. */
export function createMetricsRegistry(app: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry });
  return registry;
}
