import { loadSettingsOrExit } from '@janus/config';
import { closeServer, listen, startRuntime } from '@janus/runtime';
import { createApp } from './app.js';

const settings = loadSettingsOrExit();
const rt = await startRuntime({ app: 'retry-scheduler', settings, compilePolicy: (p) => p });
const server = await listen(createApp({ readiness: rt.readiness, registry: rt.registry }), settings.ports.scheduler, rt.logger);

rt.shutdown
  .add('stop http', () => closeServer(server))
  .add('close connections', () => rt.close())
  .install();
