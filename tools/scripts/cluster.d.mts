/** What the functions below throw on failure (the CLI prints its message and exits 1 instead). */
export class ClusterError extends Error {
  name: 'ClusterError';
}
export type ClusterKind = 'redis' | 'nats';
/** The environment Janus runs with on the clusters (REDIS_URL, NATS_URL, JANUS_STREAM_REPLICAS). */
export interface ClusterEnv {
  readonly REDIS_URL: string;
  readonly NATS_URL: string;
  readonly JANUS_STREAM_REPLICAS: string;
}
/**
 * `cluster.mjs start`: the Redis Cluster (3 primaries on 7101–7103, with `redisReplicas` also a
 * replica each on 7104–7106) and the NATS cluster n1–n3 with JetStream (4301–4303), both healthy on
 * return. Clusters already up and healthy (and of the asked layout) are reused.
 */
export function startClusters(options?: { redisReplicas?: boolean }): Promise<{
  env: ClusterEnv;
  redis: 'started' | 'reused';
  nats: 'started' | 'reused';
}>;
/** `cluster.mjs stop`: every server `start` started (SIGTERM, SIGKILL after 5 s); .janus/cluster/ removed. */
export function stopClusters(): Promise<{ stopped: number }>;
/**
 * `cluster.mjs kill`: SIGKILL to one node; resolves once it is gone. `which`: for redis its port
 * (7101–7106) or number (1–6), for nats its number (1–3), name (n1–n3) or one of its ports.
 */
export function killNode(kind: ClusterKind, which: string | number): Promise<{ pid: number | undefined; port: number }>;
/**
 * `cluster.mjs restart`: starts one node again with its configuration and data; resolves when it
 * answers (redis: also cluster_state:ok on it, or 15 s; nats: also a JetStream meta leader known to it, or 15 s).
 */
export function restartNode(kind: ClusterKind, which: string | number): Promise<{ pid: number | undefined; port: number }>;
/** `cluster.mjs status`: each expected node (printed); `ok` when every one is up. */
export function clusterStatus(): Promise<{
  ok: boolean;
  redis: { port: number; up: boolean; role: string | undefined; slots: string; clusterState: string | undefined; flags: string[] }[];
  nats: { name: string; port: number; up: boolean; jetstream: boolean; leader: string | undefined; clusterSize: number | undefined }[];
}>;
