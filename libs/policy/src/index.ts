export { PolicyStore, type ApplyResult, type AuditInput, type AuditRow, type Plan, type SaveResult, type Within } from './store.js';
export type { Tx } from './versions.js';
export { ApiKeyStore, type ApiKeyRow } from './api-key-store.js';
export { RunningPolicy, type PolicyHolder } from './running.js';
export { PolicyWatcher, announceConfigChange, type PolicyWatcherOptions } from './watcher.js';
export {
  ADMIN_TOKEN_NAME,
  AdminTokenCache,
  AdminTokenStore,
  ENV_ADMIN_TOKEN_NAME,
  adminActor,
  generateAdminToken,
  type AdminTokenOwner,
  type AdminTokenRow,
} from './admin-tokens.js';
export { ApiKeyCache, generateApiKey, hashApiKey, secretsEqual, tokenFingerprint } from './api-keys.js';
export { validatePolicyDocument, type Validation } from './validate.js';
export { canonicalJson, diffPolicies, samePolicy, type PolicyChange } from './diff.js';
export { deleteResource, putGlobal, putResource, replacePolicy, singular, type EditResult, type ExtraCheck, type PolicySection } from './edit.js';
