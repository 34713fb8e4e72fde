export {
  PolicyStore,
  type ApiKeyRow,
  type ApplyResult,
  type AuditInput,
  type AuditRow,
  type Plan,
  type SaveResult,
  type Tx,
} from './store.js';
export { PolicyWatcher, announceConfigChange, type PolicyWatcherOptions } from './watcher.js';
export { ApiKeyCache, generateApiKey, hashApiKey, secretsEqual, tokenFingerprint } from './api-keys.js';
export { joinPath, validatePolicyDocument, zodFieldErrors, type FieldError, type Validation } from './validate.js';
export { canonicalJson, diffPolicies, samePolicy, type PolicyChange } from './diff.js';
export { deleteResource, putGlobal, putResource, replacePolicy, singular, type EditResult, type ExtraCheck, type PolicySection } from './edit.js';
