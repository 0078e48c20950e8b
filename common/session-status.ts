// Session states: pure constants (no Node imports), shared by the API, the activities and the workflows.

/** Canonical session states (SPEC §3). */
export const SESSION_STATUSES = [
  'pending',
  'qr_ready',
  'connected',
  'reconnecting',
  'unhealthy',
  'failing_over',
  'logged_out',
  'failed',
  /** Every QR of a pairing expired unscanned: worker stopped, slot released; a restart shows new QRs. */
  'qr_expired',
  'stopped',
  'deleted',
] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/** States in which a session holds (or is about to hold) a proxy slot and a running worker. */
export const LIVE_STATUSES: readonly SessionStatus[] = [
  'pending',
  'qr_ready',
  'connected',
  'reconnecting',
  'unhealthy',
  'failing_over',
];

/** States in which a worker runs and must send its liveness heartbeat (the watchdog checks these). */
export const WATCHED_STATUSES: readonly SessionStatus[] = [
  'pending',
  'qr_ready',
  'connected',
  'reconnecting',
  'unhealthy',
];
