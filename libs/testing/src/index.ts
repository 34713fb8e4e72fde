export { testEnv, testNamespace } from './namespace.js';
export { dropNatsNamespace, dropPgNamespace, dropRedisNamespace } from './cleanup.js';
