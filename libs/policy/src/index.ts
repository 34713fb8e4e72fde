export { PolicyStore, type AuditInput, type SaveResult } from './store.js';
export { PolicyWatcher, announceConfigChange, type PolicyWatcherOptions } from './watcher.js';
export { generateApiKey, hashApiKey } from './api-keys.js';
