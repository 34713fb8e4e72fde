import { loadSettingsOrExit } from '@janus/config';
import { closeServer, Startup } from '@janus/runtime';
import { loadTuning } from './options.js';
import { startPersister } from './persister.js';

const settings = loadSettingsOrExit();
const tuning = loadTuning();
if ('error' in tuning) {
  process.stderr.write(`Invalid configuration:\n${tuning.error}\n`);
  process.exit(1);
}
// Serves /healthz, /readyz and /metrics until the app has started.
const startup = await Startup.listen({ app: 'persister', settings, port: settings.ports.persister });
const persister = await startup.start(() => startPersister(settings, tuning, { startup }), (started) => started.app);
startup.logger.info({ batchSize: tuning.batchSize, retentionDays: tuning.retentionDays }, 'persister consuming');

startup.shutdown
  .add('stop pruning and consuming; commit and ack the batch in hand', () => persister.stop())
  .add('stop http', () => closeServer(startup.server))
  .add('close connections', () => persister.services.close())
  .install();
