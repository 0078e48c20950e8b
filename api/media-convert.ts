/**
 * Voice notes must be Opus in OGG (what a phone records and plays as a voice note): other audio sent as `voice` is
 * converted here, where the media enters, with ffmpeg from the system (Debian `ffmpeg`). The bytes stream from the
 * media store through ffmpeg into a new upload; the output is capped like any upload (MEDIA_MAX_BYTES) and the run
 * is killed after MEDIA_CONVERT_TIMEOUT_MS.
 */
import { spawn } from 'node:child_process';
import type { Config } from '../common/config.js';
import { ApiError } from './errors.js';
import type { MediaUploads, UploadRecord } from './media-uploads.js';

/** The one type WhatsApp plays as a voice note. */
export const VOICE_MIME = 'audio/ogg; codecs=opus';

/** Audio (or a video's sound track) that ffmpeg can turn into a voice note. */
export const convertibleToVoice = (mime: string) => /^(audio|video)\//.test(mime) && mime !== VOICE_MIME;

/**
 * A new upload with `record`'s sound as a mono 48 kHz Opus voice note in OGG. 422 when ffmpeg cannot read it,
 * 504 past the time limit, 413 when the output passes the cap.
 */
export async function convertToVoice(
  uploads: MediaUploads,
  config: Pick<Config, 'MEDIA_CONVERT_TIMEOUT_MS' | 'FFMPEG_PATH'>,
  record: UploadRecord,
  field: string,
): Promise<UploadRecord> {
  const input = await uploads.open(record);
  const ffmpeg = spawn(
    config.FFMPEG_PATH,
    [
      ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-i', 'pipe:0'],
      // sound only, no metadata (names, cover art) carried over; what WhatsApp's own recorder makes
      ...['-vn', '-map_metadata', '-1', '-ac', '1', '-ar', '48000'],
      ...['-c:a', 'libopus', '-b:a', '32k', '-application', 'voip', '-f', 'ogg', 'pipe:1'],
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  ffmpeg.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 2000) stderr += c.toString();
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ffmpeg.kill('SIGKILL');
  }, config.MEDIA_CONVERT_TIMEOUT_MS);
  const exited = new Promise<number | null>((resolve, reject) => {
    ffmpeg.on('error', reject);
    ffmpeg.on('close', (code) => resolve(code));
  });
  // ffmpeg may stop reading early (an unreadable file): its closed stdin is not our error
  ffmpeg.stdin.on('error', () => undefined);
  input.on('error', (err) => ffmpeg.stdin.destroy(err));
  input.pipe(ffmpeg.stdin);
  const failed = (why: string) =>
    new ApiError(422, 'MEDIA_CONVERSION_FAILED', `${field}: could not convert to a voice note (${why})`, field);
  try {
    const [stored, code] = await Promise.allSettled([
      uploads.put(record.tenant, ffmpeg.stdout, { mimeType: VOICE_MIME, field }),
      exited,
    ]);
    if (timedOut)
      throw new ApiError(
        504,
        'MEDIA_CONVERSION_TIMEOUT',
        `${field}: converting to a voice note took longer than ${config.MEDIA_CONVERT_TIMEOUT_MS} ms`,
        field,
      );
    // the output passed the cap: that, not ffmpeg's broken pipe, is the answer
    if (stored.status === 'rejected' && (stored.reason as ApiError).statusCode === 413) throw stored.reason;
    if (code.status === 'rejected') throw failed(`ffmpeg did not start: ${(code.reason as Error).message}`);
    if (code.value !== 0) {
      if (stored.status === 'fulfilled') await uploads.remove(stored.value);
      throw failed(stderr.trim().split('\n').pop()?.slice(0, 200) || `ffmpeg exited with ${code.value}`);
    }
    if (stored.status === 'rejected') {
      const err = stored.reason as unknown;
      // an empty output is ffmpeg finding no sound in the input
      if (err instanceof ApiError && err.statusCode !== 400) throw err;
      throw failed('no audio in the file');
    }
    return stored.value;
  } finally {
    clearTimeout(timer);
    input.destroy();
    if (ffmpeg.exitCode === null) ffmpeg.kill('SIGKILL');
  }
}
