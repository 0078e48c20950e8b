/**
 * Version of the session auth folder layout (`schema.json` in each folder), shared by the worker (which migrates
 * folders up to it) and the backups (which refuse an archive written by a newer version).
 * 1: Baileys 6.7.24 folders (no schema file). 2: Baileys 7.x (adds lid-mapping, device-list, tctoken, identity-key).
 */
export const AUTH_SCHEMA_FILE = 'schema.json';
export const AUTH_SCHEMA_VERSION = 2;
export const AUTH_SCHEMA_FORMAT = 'baileys-multi-file';
