export { createLogger, type Logger } from './logger.js';
export { createMetricsRegistry } from './metrics.js';
export { checkReadiness, type ReadinessCheck, type ReadinessReport } from './readiness.js';
export { healthRoutes } from './health-routes.js';
export {
  LIVE_STATS_TTL_SECONDS,
  NO_DEPENDENCY,
  admittedField,
  decisionFields,
  parseStatsField,
  throttledField,
  readLiveStats,
  recordDecision,
  rejectedField,
  type DependencyLiveStats,
  type LiveDecision,
  type LiveStats,
  type LiveStatsKeys,
} from './live-stats.js';
