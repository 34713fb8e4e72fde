export { testEnv, testNamespace } from './namespace.js';
export { dropNatsNamespace, dropPgNamespace, dropRedisNamespace } from './cleanup.js';
export { TcpProxy } from './tcp-proxy.js';
export { CHROMIUM, launchChromium, openOfflinePage, type OfflinePage } from './browser.js';
