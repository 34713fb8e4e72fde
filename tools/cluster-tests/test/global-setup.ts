/**
 * Starts the local Redis Cluster (3 primaries, a replica each) and NATS cluster (3 nodes, JetStream)
 * of tools/scripts/cluster.mjs before the cluster tests, and stops them afterwards unless they were
 * already running (then they are left as found) or JANUS_CLUSTER_KEEP=1 (to run one file after another).
 */
// tools/scripts holds plain Node scripts (no Nx project): cluster.mjs starts and breaks the local clusters.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { startClusters, stopClusters } from '../../scripts/cluster.mjs';

export default async function setup(): Promise<() => Promise<void>> {
  const started = await startClusters({ redisReplicas: true });
  return async () => {
    if (process.env['JANUS_CLUSTER_KEEP'] === '1') return;
    if (started.redis === 'started' || started.nats === 'started') await stopClusters();
  };
}
