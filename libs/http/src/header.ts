import { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

/**
 * One request header (name in lower case). Under @hono/node-server it is read from the Node
 * request's own header object: `c.req.header()` builds a web `Headers` object from every header of
 * the request on first use, which cost ~5% of an ingress request in the benchmark.
 */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  if (incoming instanceof IncomingMessage) {
    const value = incoming.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  return c.req.header(name);
}
