import type { FastifyError, FastifyInstance } from 'fastify';
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
  const result = schema.safeParse(data ?? {});
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
  app.setErrorHandler((err: FastifyError | ApiError | ZodError, request, reply) => {
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
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } }),
  );
}
