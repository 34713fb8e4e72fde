import { ConfigError, loadSettingsOrExit } from '@janus/config';
import type { CompiledPolicy, Limiter } from '@janus/limiter';
import { closeServer, listen, startRuntime } from '@janus/runtime';
import { buildPolicyAdmin, compileStored } from './admin.js';
import { resolveAdminToken } from './admin-token.js';

const settings = loadSettingsOrExit();
let admin: { token: string; generated: boolean };
try {
  admin = resolveAdminToken(settings);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}

// The dashboard's limiter view is built after the runtime; policy versions applied before that are
// picked up below (setPolicy with the watcher's current one).
const view: { limiter?: Limiter } = {};
const rt = await startRuntime<CompiledPolicy>({
  app: 'policy-admin',
  settings,
  compilePolicy: compileStored,
  onPolicyApplied: (compiled) => view.limiter?.setPolicy(compiled),
});
if (admin.generated) {
  rt.logger.warn('JANUS_ADMIN_TOKEN is not set: generated a development admin token for this run');
  process.stdout.write(`\n  policy-admin dev token (NODE_ENV=development): ${admin.token}\n  export JANUS_ADMIN_TOKEN=${admin.token}\n\n`);
}
const built = buildPolicyAdmin(rt, admin.token);
view.limiter = built.limiter;
if (rt.policy.loaded) {
  built.limiter.setPolicy(rt.policy.compiled);
  // Idempotent: covers a previous instance that stored a job type but stopped before its consumer existed.
  void built.changes.ensureConsumers(rt.policy.policy.document);
}
const server = await listen(built.app, settings.ports.admin, rt.logger);

rt.shutdown
  .add('stop http', () => closeServer(server))
  .add('close connections', () => rt.close())
  .install();
