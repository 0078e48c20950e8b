/**
 * Inbound media messages between their arrival and their report: WhatsApp has the message acked as soon as it was
 * decrypted, and a download takes a while, so a worker killed in between would lose the message. Each one is
 * recorded (fsync'ed) in the session folder before its download and marked done once MESSAGE_RECEIVED is spooled;
 * a restarted worker downloads and reports what is left (at least once: a crash right after the report repeats it).
 */
import path from 'node:path';
import type { InboundMedia, InboundText } from './engine.js';
import { JsonlLog } from './jsonl-log.js';

export const INBOUND_PENDING_FILE = '.inbound-pending.jsonl';

type StoredMedia = Omit<InboundMedia, 'mediaKey' | 'fileEncSha256' | 'fileSha256'> & {
  mediaKey: string;
  fileEncSha256: string;
  fileSha256: string;
};

interface PendingEntry {
  waMessageId: string;
  state: 'pending' | 'done';
  message?: Omit<InboundText, 'media'> & { media: StoredMedia };
  at: number;
}

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');

export class InboundPending {
  private readonly log: JsonlLog<PendingEntry>;

  constructor(dir: string) {
    this.log = new JsonlLog<PendingEntry>({
      file: path.join(dir, INBOUND_PENDING_FILE),
      keyOf: (e) => e.waMessageId,
      isEntry: (v): v is PendingEntry =>
        typeof (v as PendingEntry)?.waMessageId === 'string' &&
        ((v as PendingEntry).state === 'done' || typeof (v as PendingEntry).message?.media?.mediaKey === 'string'),
      keep: (entries) => entries.filter((e) => e.state === 'pending'),
      compactAtLines: 1000,
      sync: true,
    });
  }

  open(): Promise<void> {
    return this.log.open();
  }

  close(): Promise<void> {
    return this.log.close();
  }

  /** Records a media message before its download (resolves once durable). */
  add(m: InboundText & { media: InboundMedia }): Promise<void> {
    const media: StoredMedia = {
      ...m.media,
      mediaKey: b64(m.media.mediaKey),
      fileEncSha256: b64(m.media.fileEncSha256),
      fileSha256: b64(m.media.fileSha256),
    };
    return this.log.append({ waMessageId: m.waMessageId, state: 'pending', message: { ...m, media }, at: Date.now() });
  }

  done(waMessageId: string): Promise<void> {
    return this.log.append({ waMessageId, state: 'done', at: Date.now() });
  }

  /** Media messages recorded and not reported yet, oldest first. */
  pending(): InboundText[] {
    const out: InboundText[] = [];
    for (const e of this.log.entries.values()) {
      if (e.state !== 'pending' || !e.message) continue;
      const m = e.message.media;
      out.push({
        ...e.message,
        media: {
          ...m,
          mediaKey: Buffer.from(m.mediaKey, 'base64'),
          fileEncSha256: Buffer.from(m.fileEncSha256, 'base64'),
          fileSha256: Buffer.from(m.fileSha256, 'base64'),
        },
      });
    }
    return out;
  }
}
