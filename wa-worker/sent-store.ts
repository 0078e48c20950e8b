/**
 * Recently sent messages of this session (issue 12 item 4), backing Baileys' `getMessage`: a recipient device that
 * could not decrypt a message sends a retry receipt, and the engine can only re-encrypt and re-send it when it
 * still has the message. Bounded: the last SENT_STORE_MAX_ENTRIES messages, none older than SENT_STORE_MAX_AGE_MS.
 * A JSONL file in the session folder (0600, like the auth files; backups carry it), appended before each send and
 * compacted at start and when it doubled; a torn last line from a crash is skipped.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FILE_MODE, writeFileAtomic } from './auth-store.js';

export const SENT_STORE_FILE = '.sent-messages.jsonl';
export const SENT_STORE_MAX_ENTRIES = 2_000;
export const SENT_STORE_MAX_AGE_MS = 24 * 3_600_000;

interface SentEntry {
  id: string;
  jid: string;
  text: string;
  at: number;
}

export class SentMessageStore {
  private readonly entries = new Map<string, SentEntry>();
  private fh: fs.FileHandle | undefined;
  private lines = 0;
  private chain: Promise<void> = Promise.resolve();
  private readonly file: string;

  constructor(
    dir: string,
    private readonly limits = { maxEntries: SENT_STORE_MAX_ENTRIES, maxAgeMs: SENT_STORE_MAX_AGE_MS },
  ) {
    this.file = path.join(dir, SENT_STORE_FILE);
  }

  async open(): Promise<void> {
    let text = '';
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch {
      // first start
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as SentEntry;
        if (typeof e.id === 'string' && typeof e.text === 'string') {
          this.entries.delete(e.id);
          this.entries.set(e.id, e);
        }
      } catch {
        // torn last line
      }
    }
    await this.rewrite();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The text of a message this session sent, while it is within the bounds. */
  get(id: string): string | undefined {
    const e = this.entries.get(id);
    if (!e || Date.now() - e.at > this.limits.maxAgeMs) return undefined;
    return e.text;
  }

  record(id: string, jid: string, text: string): Promise<void> {
    const e: SentEntry = { id, jid, text, at: Date.now() };
    this.entries.delete(id);
    this.entries.set(id, e);
    this.trim();
    const op = async () => {
      if (this.lines >= this.limits.maxEntries * 2) await this.rewrite();
      await this.fh!.write(`${JSON.stringify(e)}\n`);
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

  private trim(): void {
    const oldest = Date.now() - this.limits.maxAgeMs;
    for (const [id, e] of this.entries) {
      if (this.entries.size > this.limits.maxEntries || e.at < oldest) this.entries.delete(id);
      else break;
    }
  }

  private async rewrite(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.trim();
    const kept = [...this.entries.values()];
    await writeFileAtomic(this.file, kept.map((e) => `${JSON.stringify(e)}\n`).join(''));
    this.lines = kept.length;
    this.fh = await fs.open(this.file, fsConstants.O_WRONLY | fsConstants.O_APPEND, FILE_MODE);
  }
}
