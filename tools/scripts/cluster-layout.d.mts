/** Loopback: every node of the local test clusters listens on 127.0.0.1 only. */
export const CLUSTER_HOST: '127.0.0.1';
/** The Redis Cluster's three primaries (7101, 7102, 7103); the seeds in REDIS_URL. */
export const REDIS_PORTS: readonly number[];
/** The replicas of `cluster.mjs start --redis-replicas` (7104, 7105, 7106), one per primary. */
export const REDIS_REPLICA_PORTS: readonly number[];
/** Every Redis node of a layout: the primaries, and the replicas when asked for. */
export function redisNodePorts(replicas?: boolean): readonly number[];
export const NATS_CLUSTER_NAME: 'janus-test';
export interface NatsNode {
  /** 1, 2 or 3. */
  readonly index: number;
  /** server_name: n1, n2 or n3. */
  readonly name: string;
  /** Client port (4301–4303). */
  readonly port: number;
  /** Cluster route port (6301–6303). */
  readonly routePort: number;
  /** Monitoring (http) port (8301–8303): /varz, /jsz … */
  readonly httpPort: number;
}
export const NATS_NODES: readonly NatsNode[];
/** Client ports 4301, 4302, 4303. */
export const NATS_PORTS: readonly number[];
export const NATS_ROUTE_PORTS: readonly number[];
export const NATS_HTTP_PORTS: readonly number[];
/** 3: JetStream streams on the NATS cluster can have 3 replicas. */
export const STREAM_REPLICAS: number;
/** `redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103` */
export function redisClusterUrl(): string;
/** `nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303` */
export function natsClusterUrl(): string;
/** The environment Janus runs with on these clusters. */
export function clusterEnv(): Readonly<{ REDIS_URL: string; NATS_URL: string; JANUS_STREAM_REPLICAS: string }>;
/** The Redis node's port from its port (7101–7106) or place (1–6); undefined when `which` names none. */
export function redisPortOf(which: string | number): number | undefined;
/** The NATS node from its index (1–3), name (n1–n3) or any of its ports; undefined when `which` names none. */
export function natsNodeOf(which: string | number): NatsNode | undefined;
