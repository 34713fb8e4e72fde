import { loadSettingsOrExit } from '@janus/config';
import { closeServer, Startup } from '@janus/runtime';
import { createApp } from './app.js';
import { startScheduler } from './scheduler.js';

const settings = loadSettingsOrExit();
// Serves /healthz, /readyz and /metrics until the app has started.
const startup = await Startup.listen({ app: 'retry-scheduler', settings, port: settings.ports.scheduler });
const scheduler = await startup.start(
  () => startScheduler(settings, { startup }),
  (started) => createApp({ readiness: started.readiness, registry: started.runtime.registry }),
);

startup.shutdown
  .add('stop http', () => closeServer(startup.server))
  .add('stop outcomes and reaping', () => scheduler.stop())
  .add('close connections', () => scheduler.runtime.close())
  .install();
