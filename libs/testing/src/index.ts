export { testEnv, testNamespace } from './namespace.js';
export { dropNatsNamespace, dropPgNamespace, dropRedisNamespace } from './cleanup.js';
export { TcpProxy } from './tcp-proxy.js';
export { CHROMIUM, launchChromium, openOfflinePage, type OfflinePage } from './browser.js';
export { prng, shuffle, syntheticWorkload, type SyntheticMessage, type SyntheticNames, type SyntheticWorkload } from './synthetic.js';
export { waitFor } from './wait.js';
export { freePort } from './ports.js';
