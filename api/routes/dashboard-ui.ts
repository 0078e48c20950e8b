import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';

const DASHBOARD_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dashboard');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * The operator dashboard: static files from `dashboard/` (no build step, nothing from a CDN). The page loads
 * without a key; it asks for one and calls `/api/*` with it (API-key auth guards only `/api/*`).
 */
export function dashboardUiRoutes(dir = DASHBOARD_DIR) {
  // The file list is fixed at start: only these names are ever served (no path traversal possible).
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (type) files.set(name, { type, body: readFileSync(path.join(dir, name)) });
  }
  return async function plugin(app: FastifyInstance) {
    app.get('/', async (_request, reply) => reply.redirect('/dashboard/'));
    app.get('/dashboard', async (_request, reply) => reply.redirect('/dashboard/'));
    app.get('/dashboard/*', async (request, reply) => {
      const name = (request.params as { '*': string })['*'] || 'index.html';
      const file = files.get(name);
      if (!file) throw new ApiError(404, 'NOT_FOUND', `no dashboard file ${name}`);
      return reply.headers(SECURITY_HEADERS).type(file.type).send(file.body);
    });
  };
}
