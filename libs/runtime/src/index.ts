export { createRedis, MIN_REDIS_VERSION, pingRedis, Redis, redisVersionSupported } from './redis.js';
export { closeServer, listen } from './http.js';
export { Shutdown } from './shutdown.js';
export { startRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
