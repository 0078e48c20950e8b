/**
 * Baileys makes the inline preview of an image (jpegThumbnail, what a chat shows before the download) with sharp
 * when it can import it, and sends images without one otherwise; it loads sharp itself at the first image.
 */
import { createRequire } from 'node:module';

/**
 * Never called: importing sharp by name makes it part of the worker bundle's closure, which scripts/build-images.sh
 * copies into the image.
 */
export const loadSharp = () => import('sharp');

/**
 * Whether previews can be made, told at start-up without loading sharp: loading it costs a worker ~21 MB of RSS and
 * ~0.3 s of start, for previews it may never make.
 */
export function thumbnailsAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('sharp');
    return true;
  } catch {
    return false;
  }
}
