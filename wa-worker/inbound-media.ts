/**
 * Inbound media: the worker downloads and checks the file (engine.downloadMedia, through the session's proxy), hands
 * the bytes to the API over a signed per-session call, and reports the message with the stored file's id. A file
 * that cannot be downloaded or stored is still reported, with `id: null` and the reason.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import {
  INBOUND_MEDIA_HEADER,
  InboundMediaIdSchema,
  type InboundMediaEvent,
  type InboundMediaMeta,
} from '../common/media.js';
import { backoffDelay } from './config.js';
import { errorText } from './connection.js';
import type { EngineSocket, InboundMedia } from './engine.js';
import type { Logger } from './logger.js';
import { MediaDownloadError } from './media-download.js';
import { SignedClient, SignedHttpError, type Fencing } from './signed-post.js';

const StoredSchema = z.object({ mediaId: InboundMediaIdSchema });
/** Attempts to hand a file to the API before the message is reported without it. */
const STORE_ATTEMPTS = 5;

export interface InboundMediaOptions {
  maxBytes: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export class InboundMediaHandler {
  private readonly client: SignedClient | undefined;

  constructor(
    /** `…/sessions/<id>` of the API (undefined: no API to store files, messages are reported without them) */
    sessionUrl: string | undefined,
    secret: string,
    fencing: Fencing,
    private readonly opts: InboundMediaOptions,
    private readonly logger: Logger,
  ) {
    this.client = sessionUrl
      ? new SignedClient(sessionUrl, secret, opts.timeoutMs, 'inbound media', fencing)
      : undefined;
  }

  /** Downloads, checks and stores the file of message `waMessageId`; never throws. */
  async handle(sock: EngineSocket, waMessageId: string, media: InboundMedia): Promise<InboundMediaEvent> {
    const described = {
      type: media.type,
      mimetype: media.mimetype,
      fileName: media.fileName,
      caption: media.caption,
    };
    const failed = (error: NonNullable<InboundMediaEvent['error']>): InboundMediaEvent => ({
      ...described,
      id: null,
      size: media.fileLength ?? 0,
      sha256: null,
      error,
    });
    if (!this.client) return failed('store_failed');
    const file = path.join(os.tmpdir(), `wa-inbound-${randomBytes(8).toString('hex')}`);
    try {
      let got: { size: number; sha256: string };
      try {
        got = await sock.downloadMedia(media, file, { maxBytes: this.opts.maxBytes, timeoutMs: this.opts.timeoutMs });
      } catch (err) {
        const reason = err instanceof MediaDownloadError ? err.reason : 'download_failed';
        this.logger.warn({ waMessageId, reason, err: errorText(err) }, 'inbound media not downloaded');
        return failed(reason);
      }
      const meta: InboundMediaMeta = {
        waMessageId,
        type: media.type,
        mimetype: media.mimetype,
        size: got.size,
        sha256: got.sha256,
        fileName: media.fileName,
      };
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await this.client.postFile('inbound-media', INBOUND_MEDIA_HEADER, meta, file);
          const { mediaId } = StoredSchema.parse(await res.json());
          this.logger.info({ waMessageId, mediaId, size: got.size, type: media.type }, 'inbound media stored');
          return { ...described, id: mediaId, size: got.size, sha256: got.sha256 };
        } catch (err) {
          // a refusal (4xx) will not change on a retry; a replaced worker stops anyway
          const permanent = err instanceof SignedHttpError && err.status >= 400 && err.status < 500;
          if (permanent || attempt + 1 >= STORE_ATTEMPTS) {
            this.logger.error({ waMessageId, err: errorText(err) }, 'inbound media could not be stored');
            return { ...failed('store_failed'), size: got.size, sha256: got.sha256 };
          }
          await new Promise((r) => setTimeout(r, backoffDelay(attempt, this.opts.retryBaseMs, this.opts.retryMaxMs)));
        }
      }
    } finally {
      await rm(file, { force: true });
    }
  }
}
