/**
 * How Node runs a wa-worker, in both runners (the process runner's command, and wa-worker/Dockerfile's ENTRYPOINT and
 * ENV, which test/wa-worker-docker.test.ts holds to these). Measured with bench/capacity.ts, 30 connected idle
 * workers on 2 cores (PSS shares the node binary's pages fairly between processes):
 *  - `--max-semi-space-size=1`: a 1 MB young generation (the worker allocates little): ~18 MB less RSS.
 *  - `--optimize-for-size`: PSS 85 → 64 MB.
 *  - `--liftoff-only`: Baileys 7's WebAssembly (whatsapp-rust-bridge: binary codec, Signal, curves) stays on V8's
 *    baseline compiler instead of tiering up to TurboFan: PSS 62 → 49 MB, RSS 116 → 102 MB, for ~15 % more worker
 *    CPU while connecting (37.5 → 43.2 CPU-s for 30 boots and logins).
 *  - MALLOC_ARENA_MAX=1, UV_THREADPOOL_SIZE=2: fewer malloc arenas and libuv threads: PSS 63.7 → 62.0 MB.
 * A startup snapshot is not possible: Node 24 has no WebAssembly while it builds one, and Baileys instantiates its
 * WebAssembly module when it is imported.
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=1', '--optimize-for-size', '--liftoff-only'] as const;
export const WORKER_NODE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1', UV_THREADPOOL_SIZE: '2' };
