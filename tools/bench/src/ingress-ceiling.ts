// The ingress benchmark's ceiling (`npm run bench:ingress`): a bare Hono endpoint that reads and
// validates a submitted job the way the ingress does, and answers 202 without admission or
// publish — this machine's HTTP ceiling for the same request. Started by ingress.ts as a child
// process (bundled like the apps, or through tsx with --tsx), listening on CEILING_PORT.
import { randomBytes } from 'node:crypto';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { z } from 'zod';
import { JobRequest } from '@janus/contracts';

// The ingress validates a submitted job with this schema (apps/ingress/src/openapi.ts, where the
// payload is also documented): the contract's JobRequest, with the payload taken as it came from
// JSON.parse rather than walked again by z.json(). The ceiling does the same validation.
const JobRequestAsIngressValidatesIt = JobRequest.extend({ payload: z.unknown().optional() });

const port = Number(process.env.CEILING_PORT);
const app = new Hono();
// Reads the body from the Node request, as ingress does (the web-stream adapter behind
// c.req.json() costs ~300 µs per request here): the ceiling is the best bare endpoint.
app.post('/v1/jobs', async (c) => {
  const incoming = (c.env as { incoming: AsyncIterable<Buffer> }).incoming;
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    body = undefined;
  }
  const parsed = JobRequestAsIngressValidatesIt.safeParse(body);
  if (!parsed.success) return c.json({ error: 'invalid' }, 400);
  return c.json({ jobId: randomBytes(13).toString('hex'), status: 'admitted', attempt: 1, admittedAt: new Date().toISOString() }, 202);
});
serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => process.stdout.write('ready\n'));
