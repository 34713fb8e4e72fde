export { ConfigError, decimalInteger, EMPTY_IS_AN_ERROR, EMPTY_MESSAGE, loadSettings, loadSettingsOrExit, NAMESPACE_PATTERN, PRODUCTION_ADMIN_TOKEN_MIN, type NatsAuth, type Settings } from './settings.js';
export { parseRedisTarget, type RedisTarget } from './redis-target.js';
