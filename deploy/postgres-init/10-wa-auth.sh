#!/bin/sh
# First start of the compose Postgres (an empty volume): the auth store's own role and database (AUTH_STORE=postgres),
# separate from Temporal's. The password comes from AUTH_DB_PASSWORD (.env), passed as a psql variable.
set -eu
if [ -z "${AUTH_DB_PASSWORD:-}" ]; then
  echo "AUTH_DB_PASSWORD is empty: no wa_auth role/database created (AUTH_STORE=file needs none)"
  exit 0
fi
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v pw="$AUTH_DB_PASSWORD" <<'SQL'
CREATE ROLE wa_auth LOGIN PASSWORD :'pw';
CREATE DATABASE wa_auth OWNER wa_auth;
SQL
