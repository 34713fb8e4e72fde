export { createRedis, pingRedis, Redis } from './redis.js';
export { closeServer, listen } from './http.js';
export { Shutdown } from './shutdown.js';
export { startRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
