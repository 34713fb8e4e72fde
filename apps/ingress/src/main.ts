import { loadSettingsOrExit } from '@janus/config';
import { closeServer, Startup } from '@janus/runtime';
import { startIngress } from './ingress.js';

const settings = loadSettingsOrExit();
// Serves /healthz, /readyz and /metrics (and 503 to everything else) until the app has started.
const startup = await Startup.listen({ app: 'ingress', settings, port: settings.ports.ingress });
if (settings.signingKeyGenerated) {
  const from = settings.signingKeyFile === undefined ? 'a key generated for this process' : `the development key kept in ${settings.signingKeyFile}`;
  startup.logger.warn(`JANUS_SIGNING_KEY not set: lease tokens are signed with ${from} (development only)`);
}
const ingress = await startup.start(() => startIngress(settings, { startup }), (started) => started.app);

startup.shutdown
  .add('stop http', () => closeServer(startup.server))
  .add('close connections', () => ingress.close())
  .install();
