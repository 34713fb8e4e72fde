import { ConfigError, loadSettingsOrExit } from '@janus/config';
import { closeServer, listen } from '@janus/runtime';
import { startPolicyAdmin, type PolicyAdmin } from './admin.js';

const settings = loadSettingsOrExit();
let admin: PolicyAdmin;
try {
  admin = await startPolicyAdmin(settings);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}
const rt = admin.runtime;
if (admin.adminToken.generated) {
  rt.logger.warn('JANUS_ADMIN_TOKEN is not set: generated a development admin token for this run');
  process.stdout.write(`\n  policy-admin dev token (NODE_ENV=development): ${admin.adminToken.token}\n  export JANUS_ADMIN_TOKEN=${admin.adminToken.token}\n\n`);
}
const server = await listen(admin.app, { host: settings.host, port: settings.ports.admin }, rt.logger);

rt.shutdown
  .add('stop http', () => closeServer(server))
  .add('close connections', () => admin.close())
  .install();
