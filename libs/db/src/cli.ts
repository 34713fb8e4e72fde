import { loadSettingsOrExit } from '@janus/config';
import { migrate } from './migrate.js';

// `npm run migrate`: applies migrations to the namespace in DATABASE_URL / JANUS_NAMESPACE.
const settings = loadSettingsOrExit();
await migrate(settings);
process.stdout.write(`migrations applied to schema "${settings.namespace}"\n`);
