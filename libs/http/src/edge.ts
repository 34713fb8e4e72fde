import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import { zodFieldErrors } from '@janus/contracts';
import { COMMON_PROBLEMS, fieldErrorsDetail, invalidRequest, problem } from './problem.js';

/** A zod validator's result as @hono/zod-openapi hands it to a `defaultHook`. */
export type ValidationResult =
  | { readonly success: true; readonly target: string }
  | { readonly success: false; readonly target: string; readonly error: { readonly issues: readonly z.core.$ZodIssue[] } };

/** The `defaultHook` of every sub-app: a failing validator is a 400 problem naming each bad field. */
export function validationHook(result: ValidationResult): Response | undefined {
  if (result.success) return undefined;
  const errors = zodFieldErrors(result.error.issues);
  return invalidRequest(errors, `invalid ${result.target === 'json' ? 'body' : result.target}: ${fieldErrorsDetail(errors)}`);
}

interface ErrorLogger {
  error(obj: object, msg: string): void;
  warn?(obj: object, msg: string): void;
}

/**
 * Whether PostgreSQL refused a value of the request as text it cannot store: U+0000 (NUL) in text
 * (SQLSTATE 22021) or in json (22P05), or a lone UTF-16 surrogate in json (22P02 "invalid input
 * syntax for type json"). Looks through `cause` (drizzle wraps the driver's error).
 */
export function isUnstorableTextError(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++, e = (e as { cause?: unknown }).cause) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === '22021' || code === '22P05') return true;
    if (code === '22P02' && typeof message === 'string' && message.includes('type json')) return true;
  }
  return false;
}

/**
 * The app's `onError`: a client error hono raised (415, 413, 400 …) as problem+json; anything else
 * is a fault, logged, and answered 500 (with `internalDetail` when given).
 */
export function problemOnError(opts: { logger?: ErrorLogger | undefined; internalDetail?: string } = {}): ErrorHandler {
  return (error: Error, c: Context) => {
    if (error instanceof HTTPException && error.status < 500) {
      const type =
        error.status === 415 ? COMMON_PROBLEMS.unsupportedMediaType : error.status === 413 ? COMMON_PROBLEMS.payloadTooLarge : COMMON_PROBLEMS.invalidRequest;
      return problem(error.status, type, error.message || 'Bad request', { detail: error.message || `the request was refused (${error.status})` });
    }
    // The last guard of "no bad input yields a 5xx": a string no route checked reached PostgreSQL.
    // Routes name the field themselves (isStorableText, StorableText); this answers any they miss.
    if (isUnstorableTextError(error)) {
      opts.logger?.warn?.({ err: error, method: c.req.method, path: c.req.path }, 'request held text PostgreSQL cannot store');
      return problem(400, COMMON_PROBLEMS.invalidRequest, 'Invalid request', {
        detail: 'the request holds text that cannot be stored: U+0000 (NUL) or a lone UTF-16 surrogate, in the path, a query parameter, a header or the body',
      });
    }
    opts.logger?.error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    return problem(500, COMMON_PROBLEMS.internal, 'Internal error', { detail: opts.internalDetail ?? 'the request failed because of a fault in Janus' });
  };
}

/** The app's `notFound`: a 404 problem naming the route. */
export const problemNotFound: NotFoundHandler = (c) => problem(404, COMMON_PROBLEMS.notFound, 'Not found', { detail: `no route for ${c.req.method} ${c.req.path}` });

/** A Hono route path (`/v1/tenants/:id/keys`, `:id{[0-9]+}`, `*`) as a regular expression over whole paths. */
function routePattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*';
      if (segment.startsWith(':')) return '[^/]+';
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return new RegExp(`^${source}/?$`);
}

/**
 * The app's `notFound`, knowing the app's routes: a path that some route serves under other
 * methods is 405 with `Allow` listing them (RFC 9110 §15.5.6); any other path 404 (problemNotFound).
 * The routes are read at the first miss, once every route is registered.
 */
export function problemNotFoundFor(app: { readonly routes: readonly { readonly method: string; readonly path: string }[] }): NotFoundHandler {
  let routes: { method: string; pattern: RegExp }[] | undefined;
  return (c) => {
    routes ??= app.routes.filter((r) => r.method !== 'ALL').map((r) => ({ method: r.method, pattern: routePattern(r.path) }));
    const allowed = new Set(routes.filter((r) => r.pattern.test(c.req.path)).map((r) => r.method));
    if (allowed.size === 0 || allowed.has(c.req.method)) return problemNotFound(c);
    if (allowed.has('GET')) allowed.add('HEAD');
    const allow = [...allowed].sort().join(', ');
    return problem(405, COMMON_PROBLEMS.methodNotAllowed, 'Method not allowed', { detail: `${c.req.method} is not served on ${c.req.path}; it takes ${allow}`, headers: { allow } });
  };
}
