import { loadSettingsOrExit } from '@janus/config';
import { closeServer, listen } from '@janus/runtime';
import { createApp } from './app.js';
import { startScheduler } from './scheduler.js';

const settings = loadSettingsOrExit();
const scheduler = await startScheduler(settings);
const rt = scheduler.runtime;
const server = await listen(createApp({ readiness: scheduler.readiness, registry: rt.registry }), { host: settings.host, port: settings.ports.scheduler }, rt.logger);

rt.shutdown
  .add('stop http', () => closeServer(server))
  .add('stop outcomes and reaping', () => scheduler.stop())
  .add('close connections', () => rt.close())
  .install();
