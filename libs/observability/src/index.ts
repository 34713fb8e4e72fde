export { createLogger, type Logger } from './logger.js';
export { createMetricsRegistry } from './metrics.js';
export { checkReadiness, type ReadinessCheck, type ReadinessReport } from './readiness.js';
export { healthRoutes } from './health-routes.js';
