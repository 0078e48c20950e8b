/**
 * Baileys makes the inline preview of an image (jpegThumbnail, what a chat shows before the download) with sharp
 * when it can import it, and sends images without one otherwise. Importing sharp here, by name, makes it part of
 * the worker's bundle closure (scripts/build-images.sh copies what the bundle imports into the image) and lets the
 * worker say at start-up whether previews are made.
 */
export async function thumbnailsAvailable(): Promise<boolean> {
  try {
    await import('sharp');
    return true;
  } catch {
    return false;
  }
}
