// The layout of the local test clusters that tools/scripts/cluster.mjs starts on loopback: which
// ports the Redis Cluster and the NATS cluster use and the environment Janus needs to use them.
// Pure values and functions only (importing this starts nothing), so that tests can import them:
//   import { redisClusterUrl, natsClusterUrl, clusterEnv } from '../../tools/scripts/cluster-layout.mjs';
//
//   Redis Cluster  primaries 7101 7102 7103, replicas 7104 7105 7106 (only with `start --redis-replicas`);
//                  each node's cluster bus is its port + 10000 (17101 …), as Redis does by default.
//   NATS cluster   n1 n2 n3: clients 4301–4303, routes 6301–6303, monitoring (http) 8301–8303,
//                  cluster name janus-test, JetStream on every node.
// None of them is a default port (6379, 4222, 5432 stay for the everyday stack of stack.mjs).

export const CLUSTER_HOST = '127.0.0.1';

/** The three primaries the cluster is created with; they are the seeds in REDIS_URL. */
export const REDIS_PORTS = Object.freeze([7101, 7102, 7103]);
/** The replicas of `start --redis-replicas`, one per primary. */
export const REDIS_REPLICA_PORTS = Object.freeze([7104, 7105, 7106]);

/** Every Redis node of a layout: the primaries, and the replicas when asked for. */
export const redisNodePorts = (replicas = false) => Object.freeze([...REDIS_PORTS, ...(replicas ? REDIS_REPLICA_PORTS : [])]);

export const NATS_CLUSTER_NAME = 'janus-test';
/** The three NATS servers: index 1–3, server_name n1–n3 and their three ports each. */
export const NATS_NODES = Object.freeze(
  [1, 2, 3].map((index) =>
    Object.freeze({ index, name: `n${index}`, port: 4300 + index, routePort: 6300 + index, httpPort: 8300 + index }),
  ),
);
export const NATS_PORTS = Object.freeze(NATS_NODES.map((n) => n.port));
export const NATS_ROUTE_PORTS = Object.freeze(NATS_NODES.map((n) => n.routePort));
export const NATS_HTTP_PORTS = Object.freeze(NATS_NODES.map((n) => n.httpPort));

/** Three NATS servers, so JetStream streams on them can (and in these tests should) have 3 replicas. */
export const STREAM_REPLICAS = 3;

/** `redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103` */
export const redisClusterUrl = () => `redis+cluster://${REDIS_PORTS.map((p) => `${CLUSTER_HOST}:${p}`).join(',')}`;

/** `nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303` */
export const natsClusterUrl = () => NATS_PORTS.map((p) => `nats://${CLUSTER_HOST}:${p}`).join(',');

/** The environment Janus runs with on these clusters. */
export const clusterEnv = () =>
  Object.freeze({ REDIS_URL: redisClusterUrl(), NATS_URL: natsClusterUrl(), JANUS_STREAM_REPLICAS: String(STREAM_REPLICAS) });

/**
 * The Redis node `which` names: its port (7101–7106) or its place in the layout (1–6); undefined
 * when it names none.
 */
export function redisPortOf(which) {
  const n = Number(String(which).trim());
  if (!Number.isInteger(n)) return undefined;
  const all = redisNodePorts(true);
  if (all.includes(n)) return n;
  return n >= 1 && n <= all.length ? all[n - 1] : undefined;
}

/**
 * The NATS node `which` names: its index (1–3), its name (n1–n3) or any of its ports (client,
 * route or monitoring); undefined when it names none.
 */
export function natsNodeOf(which) {
  const text = String(which).trim().toLowerCase();
  const byName = NATS_NODES.find((n) => n.name === text);
  if (byName) return byName;
  const n = Number(text);
  if (!Number.isInteger(n)) return undefined;
  return NATS_NODES.find((node) => node.index === n || node.port === n || node.routePort === n || node.httpPort === n);
}
