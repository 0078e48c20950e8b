/** PostgreSQL of the auth-store tests (AUTH_STORE=postgres), from data/services.env (scripts/services.sh). */

/** The deployment secret of the auth store in every test stack (fixed, ≥32 chars). */
export const AUTH_SECRET = 'test-auth-store-secret-0123456789abcdef0123';

export function authDatabaseUrl(): string {
  const url = process.env.AUTH_DATABASE_URL;
  // Never skipped: without PostgreSQL these suites fail and say how to get it.
  if (!url) throw new Error('AUTH_DATABASE_URL is not set: run scripts/services.sh and load data/services.env');
  return url;
}
