import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono } from 'hono';

/**
 * The files of the `swagger-ui-dist` package that `/docs` serves, and their content types. Only
 * these names are served, so no request path ever reaches the file system.
 */
const ASSETS: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

// Swagger UI's own styles and icons need inline styles and data: images; scripts and requests stay on this origin.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

let assetDir: string | undefined;
const assets = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

function readAsset(name: string): Promise<Uint8Array<ArrayBuffer>> {
  let file = assets.get(name);
  if (file === undefined) {
    assetDir ??= path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    file = readFile(path.join(assetDir, name)).then((buffer) => new Uint8Array(buffer));
    // A failed read (package missing) is not cached: the next request tries again.
    file.catch(() => assets.delete(name));
    assets.set(name, file);
  }
  return file;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * `GET /docs`: Swagger UI for the app's OpenAPI document, served entirely by the app itself from
 * the `swagger-ui-dist` npm package (no CDN), so the page works on a machine without internet.
 * Also serves `/docs/init.js` (the page's script: the CSP forbids inline scripts) and
 * `/docs/assets/<file>` (Swagger UI's bundle and styles, read once and kept in memory).
 */
export function apiDocsRoutes(opts: { title: string; specUrl?: string }): Hono {
  const specUrl = opts.specUrl ?? '/openapi.json';
  const headers = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff' };
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(opts.title)}</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;
  // validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
  const init = `window.ui = SwaggerUIBundle(${JSON.stringify({ url: specUrl, dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null, layout: 'BaseLayout' })});\n`;

  const app = new Hono();
  app.get('/docs', (c) => c.html(html, 200, headers));
  app.get('/docs/init.js', (c) => c.body(init, 200, { ...headers, 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }));
  app.get('/docs/assets/:file', async (c) => {
    const name = c.req.param('file');
    const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (type === undefined) return c.notFound();
    return c.body(await readAsset(name), 200, { ...headers, 'content-type': type, 'cache-control': 'public, max-age=3600' });
  });
  return app;
}
