/**
 * Recently sent messages of this session, backing Baileys' `getMessage`: a recipient device that
 * could not decrypt a message sends a retry receipt, and the engine can only re-encrypt and re-send it when it
 * still has the message. Bounded: the last SENT_STORE_MAX_ENTRIES messages, none older than SENT_STORE_MAX_AGE_MS.
 * A JSONL file in the session folder (0600, like the auth files; backups carry it), appended before each send and
 * compacted at start and when it doubled; a torn last line from a crash is skipped.
 */
import path from 'node:path';
import { JsonlLog } from './jsonl-log.js';

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
  private readonly log: JsonlLog<SentEntry>;

  constructor(
    dir: string,
    private readonly limits = { maxEntries: SENT_STORE_MAX_ENTRIES, maxAgeMs: SENT_STORE_MAX_AGE_MS },
  ) {
    this.log = new JsonlLog<SentEntry>({
      file: path.join(dir, SENT_STORE_FILE),
      keyOf: (e) => e.id,
      isEntry: (v): v is SentEntry =>
        typeof (v as SentEntry)?.id === 'string' && typeof (v as SentEntry).text === 'string',
      keep: (entries) => {
        const oldest = Date.now() - limits.maxAgeMs;
        return entries.filter((e) => e.at >= oldest).slice(-limits.maxEntries);
      },
      compactAtLines: limits.maxEntries * 2,
      sync: false,
    });
  }

  open(): Promise<void> {
    return this.log.open();
  }

  get size(): number {
    return this.log.entries.size;
  }

  /** The text of a message this session sent, while it is within the bounds. */
  get(id: string): string | undefined {
    const e = this.log.get(id);
    if (!e || Date.now() - e.at > this.limits.maxAgeMs) return undefined;
    return e.text;
  }

  record(id: string, jid: string, text: string): Promise<void> {
    const written = this.log.append({ id, jid, text, at: Date.now() });
    // bounded in memory too: drop the oldest beyond the limits
    const oldest = Date.now() - this.limits.maxAgeMs;
    for (const [key, e] of this.log.entries) {
      if (this.log.entries.size > this.limits.maxEntries || e.at < oldest) this.log.entries.delete(key);
      else break;
    }
    return written;
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
