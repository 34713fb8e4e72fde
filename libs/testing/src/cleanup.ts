import { Cluster, Redis } from 'ioredis';
import { parseRedisTarget } from '@janus/config';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

/** Deletes every Redis key of a namespace (`<ns>:*`), on every primary when `redisUrl` names a cluster. */
export async function dropRedisNamespace(redisUrl: string, namespace: string): Promise<void> {
  const target = parseRedisTarget(redisUrl);
  const client =
    target.mode === 'single'
      ? new Redis(target.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
      : new Cluster([...target.nodes], {
          lazyConnect: true,
          redisOptions: { maxRetriesPerRequest: 1, ...(target.password !== undefined ? { password: target.password } : {}), ...(target.username !== undefined ? { username: target.username } : {}), ...(target.tls ? { tls: {} } : {}) },
        });
  try {
    await client.connect();
    for (const node of client instanceof Cluster ? client.nodes('master') : [client]) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
        cursor = next;
        // One UNLINK per key: in a cluster the keys of one node may still lie in different slots.
        if (keys.length > 0) await (client instanceof Cluster ? Promise.all(keys.map((k) => node.unlink(k))) : node.unlink(...keys));
      } while (cursor !== '0');
    }
  } finally {
    client.disconnect();
  }
}

/** Deletes every JetStream stream of a namespace (`<NS>_*`); `auth`: a user that may (settings.natsAuth, the apps' user). */
export async function dropNatsNamespace(servers: string | string[], namespace: string, auth?: { readonly user: string; readonly password: string }): Promise<void> {
  // nats.js ignores the URL scheme: `tls: {}` is what makes a tls:// URL require TLS.
  const tls = [servers].flat().some((s) => /^tls:\/\//i.test(s.trim())) ? { tls: {} } : {};
  const nc = await connect({ servers, ...tls, ...(auth !== undefined ? { user: auth.user, pass: auth.password } : {}) });
  try {
    const jsm = await jetstreamManager(nc);
    const prefix = `${namespace.toUpperCase()}_`;
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(prefix)) await jsm.streams.delete(name);
    }
  } finally {
    await nc.close();
  }
}

/** Drops the PostgreSQL schema of a namespace. */
export async function dropPgNamespace(databaseUrl: string, namespace: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
  } finally {
    await client.end();
  }
}
