/**
 * Fencing by worker generation, on the worker's side. The orchestrator starts each worker with WORKER_GENERATION and
 * writes the same number into the session folder (common/worker-fence.ts) before the start. A worker that is no
 * longer the newest — the fence names a newer generation, or the API answered 409 STALE_GENERATION — has been
 * replaced: it writes nothing more (no keys, no events) and exits with FENCED_EXIT_CODE, which runners leave down.
 *
 * Cost: one read of a small file before each auth write (measured in bench/fence-cost.ts; README).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseFence, WORKER_FENCE_FILE } from '../common/worker-fence.js';

export class StaleGenerationError extends Error {
  override readonly name = 'StaleGenerationError';
  constructor(
    readonly own: number,
    readonly newer: number | null,
    readonly source: 'fence' | 'api',
  ) {
    super(
      source === 'fence'
        ? `replaced: the session folder is fenced at generation ${newer}, this worker is generation ${own}`
        : `replaced: the API refused generation ${own} (STALE_GENERATION)`,
    );
  }
}

export class WorkerFence {
  private readonly file: string;
  private fenced: StaleGenerationError | null = null;

  /** `generation` undefined: a worker started without one (never fenced). `onFenced` runs once. */
  constructor(
    dir: string,
    readonly generation: number | undefined,
    private readonly onFenced: (err: StaleGenerationError) => void,
  ) {
    this.file = path.join(dir, WORKER_FENCE_FILE);
  }

  get isFenced(): boolean {
    return this.fenced !== null;
  }

  /** Throws (and reports once) when this worker has been replaced; a missing or unreadable fence fences nothing. */
  async check(): Promise<void> {
    if (this.fenced) throw this.fenced;
    if (this.generation === undefined) return;
    let text: string;
    try {
      // Synchronous on purpose: a few bytes from the page cache, ~10× cheaper than the async round trips.
      text = readFileSync(this.file, 'utf8');
    } catch {
      return;
    }
    const fence = parseFence(text);
    if (fence !== null && fence > this.generation) this.trip(new StaleGenerationError(this.generation, fence, 'fence'));
  }

  /** The API refused this worker's generation (409 STALE_GENERATION). */
  refusedByApi(): void {
    if (this.fenced) return;
    this.fenced = new StaleGenerationError(this.generation ?? -1, null, 'api');
    this.onFenced(this.fenced);
  }

  private trip(err: StaleGenerationError): never {
    this.fenced = err;
    this.onFenced(err);
    throw err;
  }
}
