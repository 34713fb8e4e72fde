export { Cluster, createRedis, MIN_REDIS_VERSION, pingRedis, Redis, redisPrimaries, redisVersionSupported, type RedisClient } from './redis.js';
export { closeServer, listen } from './http.js';
export { Shutdown } from './shutdown.js';
export { isUnreachable, Startup, untilReachable } from './startup.js';
export { startServices, type Services, type ServicesOptions } from './services.js';
export { startRuntime, type Runtime, type RuntimeOptions, type WithApiKeys } from './runtime.js';
export { compileStoredPolicy, LimiterPolicy, startLimiterRuntime, type LimiterRuntime, type LimiterRuntimeOptions } from './limiter-runtime.js';
