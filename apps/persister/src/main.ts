import { loadSettingsOrExit } from '@janus/config';
import { Persister, schedulePruning } from '@janus/event-store';
import { closeServer, listen, startRuntime } from '@janus/runtime';
import { createApp } from './app.js';
import { loadTuning } from './options.js';

const settings = loadSettingsOrExit();
const tuning = loadTuning();
if ('error' in tuning) {
  process.stderr.write(`Invalid configuration:\n${tuning.error}\n`);
  process.exit(1);
}
const rt = await startRuntime({ app: 'persister', settings, compilePolicy: (p) => p });
const persister = new Persister({
  db: rt.db.db,
  js: rt.js,
  jsm: rt.jsm,
  names: rt.names,
  logger: rt.logger,
  registry: rt.registry,
  batchSize: tuning.batchSize,
});
await persister.start();
const stopPruning = schedulePruning(rt.db.db, {
  retentionDays: tuning.retentionDays,
  onResult: (r) => rt.logger.info(r, 'pruned history'),
  onError: (err) => rt.logger.warn({ err }, 'pruning failed; will retry'),
});
const server = await listen(
  createApp({ readiness: [...rt.readiness, ...persister.readiness], registry: rt.registry }),
  settings.ports.persister,
  rt.logger,
);
rt.logger.info({ batchSize: tuning.batchSize, retentionDays: tuning.retentionDays }, 'persister consuming');

rt.shutdown
  .add('stop pruning', stopPruning)
  .add('stop consuming; commit and ack the batch in hand', () => persister.stop())
  .add('stop http', () => closeServer(server))
  .add('close connections', () => rt.close())
  .install();
