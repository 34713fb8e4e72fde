import { loadSettingsOrExit } from '@janus/config';
import { closeServer, listen } from '@janus/runtime';
import { startIngress } from './ingress.js';

const settings = loadSettingsOrExit();
const ingress = await startIngress(settings);
const rt = ingress.runtime;
if (settings.signingKeyGenerated) rt.logger.warn('JANUS_SIGNING_KEY not set: lease tokens are signed with a key generated for this process (development only)');
const server = await listen(ingress.app, { host: settings.host, port: settings.ports.ingress }, rt.logger);

rt.shutdown
  .add('stop http', () => closeServer(server))
  .add('close connections', () => ingress.close())
  .install();
