import { loadSettingsOrExit } from '@janus/config';
import { closeServer, listen } from '@janus/runtime';
import { loadTuning } from './options.js';
import { startPersister } from './persister.js';

const settings = loadSettingsOrExit();
const tuning = loadTuning();
if ('error' in tuning) {
  process.stderr.write(`Invalid configuration:\n${tuning.error}\n`);
  process.exit(1);
}
const persister = await startPersister(settings, tuning);
const { logger, shutdown } = persister.services;
const server = await listen(persister.app, { host: settings.host, port: settings.ports.persister }, logger);
logger.info({ batchSize: tuning.batchSize, retentionDays: tuning.retentionDays }, 'persister consuming');

shutdown
  .add('stop pruning and consuming; commit and ack the batch in hand', () => persister.stop())
  .add('stop http', () => closeServer(server))
  .add('close connections', () => persister.services.close())
  .install();
