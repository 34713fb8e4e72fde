import { ConfigError, loadSettingsOrExit } from '@janus/config';
import { closeServer, Startup } from '@janus/runtime';
import { startPolicyAdmin, type PolicyAdmin } from './admin.js';

const settings = loadSettingsOrExit();
// Serves /healthz, /readyz and /metrics (and 503 to everything else) until the app has started.
const startup = await Startup.listen({ app: 'policy-admin', settings, port: settings.ports.admin });
let admin: PolicyAdmin;
try {
  admin = await startup.start(() => startPolicyAdmin(settings, { startup }), (started) => started.app);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}
if (admin.adminToken.generated) {
  startup.logger.warn('JANUS_ADMIN_TOKEN is not set: generated a development admin token for this run');
  process.stdout.write(`\n  policy-admin dev token (NODE_ENV=development): ${admin.adminToken.token}\n  export JANUS_ADMIN_TOKEN=${admin.adminToken.token}\n\n`);
}

startup.shutdown
  .add('stop http', () => closeServer(startup.server))
  .add('close connections', () => admin.close())
  .install();
