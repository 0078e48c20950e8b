/**
 * How a session's wa-worker runs. Two implementations share this contract: Docker (one container per session,
 * production) and child processes (machines without Docker). The orchestrator never talks to a worker directly;
 * it only starts, stops and inspects it.
 */
export interface WorkerSpec {
  sessionId: string;
  /** Canonical socks5h:// URL (secret: goes into the worker's environment, never into logs or labels). */
  proxyUrl: string;
  /** Complete environment of the worker (SESSION_ID, PROXY_URL, WEBHOOK_URL, WEBHOOK_SECRET, ...). */
  env: Record<string, string>;
}

export interface WorkerInfo {
  sessionId: string;
  running: boolean;
  /** host:port of the proxy it was started with (never the credentials). */
  proxyEndpoint: string | null;
  /** Fingerprint of the proxy URL it was started with, to tell whether a restart needs a new worker. */
  proxyHash: string | null;
  pid?: number;
  containerId?: string;
  startedAt?: number;
}

export interface WorkerRunner {
  readonly kind: 'docker' | 'process' | 'standin';
  /** Starts the worker; idempotent: a worker already running with the same proxy is kept as is. */
  start(spec: WorkerSpec): Promise<WorkerInfo>;
  /** Stops it (SIGTERM, then SIGKILL after the grace period); removes the container / bookkeeping when asked. */
  stop(sessionId: string, opts?: { remove?: boolean }): Promise<void>;
  /** Stops and starts it again with the same spec (a hung worker included). */
  restart(sessionId: string): Promise<WorkerInfo | null>;
  inspect(sessionId: string): Promise<WorkerInfo | null>;
  /** Every worker this runner manages, running or not. */
  list(): Promise<WorkerInfo[]>;
  close(): Promise<void>;
}
