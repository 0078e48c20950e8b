/**
 * A small durable map kept as an append-only JSONL file in the session folder (0600, like the auth files): one line
 * per change, the last line for a key wins, a torn last line from a crash is skipped, and the file is compacted (an
 * atomic rewrite of what the owner keeps) at open and whenever it holds twice the kept entries.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import { FILE_MODE, writeFileAtomic } from './auth-store.js';

export interface JsonlLogOptions<E> {
  file: string;
  keyOf: (entry: E) => string;
  isEntry: (value: unknown) => value is E;
  /** What a compaction keeps, oldest first (entries arrive oldest first). */
  keep: (entries: E[]) => E[];
  /** Compact when the file holds this many lines. */
  compactAtLines: number;
  /** Resolve appends only after fdatasync (records that must survive a power loss). */
  sync: boolean;
}

export class JsonlLog<E> {
  /** The current entries, least recently written first. */
  readonly entries = new Map<string, E>();
  private fh: fs.FileHandle | undefined;
  private lines = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: JsonlLogOptions<E>) {}

  async open(): Promise<void> {
    let text = '';
    try {
      text = await fs.readFile(this.opts.file, 'utf8');
    } catch {
      // first start
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const value: unknown = JSON.parse(line);
        if (this.opts.isEntry(value)) this.put(value);
      } catch {
        // torn last line from a crash: that record never completed
      }
    }
    await this.compact();
  }

  get(key: string): E | undefined {
    return this.entries.get(key);
  }

  /** Records an entry; resolves once it is written (and synced with `sync`). Appends run in order. */
  append(entry: E): Promise<void> {
    this.put(entry);
    const op = async () => {
      if (this.lines >= this.opts.compactAtLines) await this.compact();
      await this.fh!.write(`${JSON.stringify(entry)}\n`);
      if (this.opts.sync) await this.fh!.datasync();
      this.lines++;
    };
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }

  private put(entry: E): void {
    const key = this.opts.keyOf(entry);
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  private async compact(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    const kept = this.opts.keep([...this.entries.values()]);
    this.entries.clear();
    for (const e of kept) this.entries.set(this.opts.keyOf(e), e);
    await writeFileAtomic(this.opts.file, kept.map((e) => `${JSON.stringify(e)}\n`).join(''));
    this.lines = kept.length;
    this.fh = await fs.open(this.opts.file, fsConstants.O_WRONLY | fsConstants.O_APPEND, FILE_MODE);
  }
}
