import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError, type ZodType, type ZodTypeDef } from 'zod';
import { redactText } from '../common/redact.js';

/** An error with its HTTP status and a stable code; rendered as `{error: {code, message, field?}}`. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Validates `data` against a zod schema; the first problem becomes a 400 naming its field. */
export function parseInput<T>(
  schema: ZodType<T, ZodTypeDef, unknown>,
  data: unknown,
  where: 'body' | 'query' | 'params',
): T {
  // An absent body is an empty object; a JSON `null` is not an object and fails like any other wrong type.
  const result = schema.safeParse(data === undefined ? {} : data);
  if (result.success) return result.data;
  throw zodToApiError(result.error, where);
}

export function zodToApiError(err: ZodError, where: string): ApiError {
  const issue = err.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : undefined;
  const message =
    issue.code === 'unrecognized_keys'
      ? `unknown field(s) in ${where}: ${issue.keys.join(', ')}`
      : issue.code === 'invalid_type' && issue.received === 'undefined'
        ? `${field ?? where} is required`
        : `${field ?? where}: ${issue.message}`;
  return new ApiError(
    400,
    'VALIDATION_ERROR',
    redactText(message),
    field ?? (issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined),
  );
}

/** One error handler for every route: known errors keep their status, anything else is a 500 without details. */
export function installErrorHandler(app: FastifyInstance) {
  const allowed = methodsByPath(app);
  /** No route for this method and path: 405 with `Allow` when the path is known (RFC 9110 §15.5.6), else 404. */
  const unmatched = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    const allow = allowed(path);
    if (allow.length > 0 && !allow.includes(request.method))
      return reply
        .status(405)
        .header('allow', allow.join(', '))
        .send({ error: { code: 'METHOD_NOT_ALLOWED', message: `${request.method} is not allowed on ${path}` } });
    return reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${path}` } });
  };
  app.setErrorHandler((err: FastifyError | ApiError | ZodError, request, reply) => {
    // The body of an unmatched request (e.g. QUERY without a content type) is not worth a 400: no route took it.
    if (request.is404) return unmatched(request, reply);
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
      return reply.status(err.statusCode).send({ error: { code: err.code, message: err.message, field: err.field } });
    }
    if (err instanceof ZodError) {
      const apiErr = zodToApiError(err, 'body');
      return reply.status(400).send({ error: { code: apiErr.code, message: apiErr.message, field: apiErr.field } });
    }
    const status = (err as FastifyError).statusCode;
    if (status && status >= 400 && status < 500) {
      const code =
        (err as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
      return reply.status(status).send({ error: { code, message: redactText(err.message) } });
    }
    request.log.error({ err: redactText(String(err)), stack: (err as Error).stack }, 'unhandled API error');
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler(unmatched);
}

/**
 * The one 405 mechanism: every route registered anywhere in the app is recorded (an `onRoute` hook at the root
 * is inherited by every plugin); an unmatched request whose path matches a known route pattern learns its methods.
 */
function methodsByPath(app: FastifyInstance): (path: string) => string[] {
  const patterns = new Map<string, { re: RegExp; methods: Set<string>; static: boolean }>();
  app.addHook('onRoute', (route) => {
    const url = route.url;
    let entry = patterns.get(url);
    if (!entry) {
      const source = url
        .split('/')
        .map((seg) => (seg === '*' ? '.*' : seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/');
      entry = { re: new RegExp(`^${source}$`), methods: new Set(), static: !/[:*]/.test(url) };
      patterns.set(url, entry);
    }
    for (const m of [route.method].flat()) entry.methods.add(m.toUpperCase());
  });
  return (path) => {
    // Like the router: a static route shadows the parametric ones matching the same path.
    const matching = [...patterns.values()].filter((p) => p.re.test(path));
    const chosen = matching.some((p) => p.static) ? matching.filter((p) => p.static) : matching;
    return [...new Set(chosen.flatMap((p) => [...p.methods]))].sort();
  };
}
