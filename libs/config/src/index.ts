export { ConfigError, loadSettings, loadSettingsOrExit, NAMESPACE_PATTERN, type Settings } from './settings.js';
