/**
 * The one gate every backend's bytes pass before they become a RenderedImage: sharp decodes
 * them completely (so a truncated file or an HTML error page is caught here, not in a chat
 * client), a PNG is kept as it came minus its text chunks, anything else (Hugging Face usually
 * answers JPEG) is re-encoded as PNG. The size reported is the decoded image's, never the one
 * that was asked for.
 */

import sharp from "sharp";
import { RemoteCallError } from "../retry.js";
import { isPng, withoutTextChunks } from "./png.js";

export interface DecodedImage {
  png: Buffer;
  width: number;
  height: number;
}

/**
 * Decodes bytes to prove they are a whole image and returns them as PNG. Anything else throws a
 * non-retryable RemoteCallError (a BotError) naming `source` and what the body looked like: a
 * server that answers HTML or a cut-off file would most likely do so again.
 */
export async function decodeToPng(
  bytes: Uint8Array,
  source: string,
  contentType?: string | null,
): Promise<DecodedImage> {
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (input.length === 0) throw notAnImage(source, "an empty body", contentType);
  try {
    if (isPng(input)) {
      // failOn "warning" (sharp's strictest) makes libpng's complaints about a cut-off IDAT fatal.
      const { info } = await sharp(input, { failOn: "warning" })
        .raw()
        .toBuffer({ resolveWithObject: true });
      return { png: withoutTextChunks(input), width: info.width, height: info.height };
    }
    const { data, info } = await sharp(input, { failOn: "warning" })
      .png()
      .toBuffer({ resolveWithObject: true });
    return { png: data, width: info.width, height: info.height };
  } catch (error) {
    if (error instanceof RemoteCallError) throw error;
    throw notAnImage(source, describeBody(input), contentType, error);
  }
}

function notAnImage(
  source: string,
  what: string,
  contentType: string | null | undefined,
  cause?: unknown,
): RemoteCallError {
  const type = contentType ? `, content-type ${contentType}` : "";
  const reason = cause instanceof Error ? `: ${firstLine(cause.message)}` : "";
  return new RemoteCallError(
    `${source} returned ${what}${type} that is not a decodable image${reason}`,
    { retryable: false },
  );
}

/** A short description of a body for the error message, without echoing it. */
function describeBody(body: Buffer): string {
  const head = body.subarray(0, 64).toString("latin1").trimStart().toLowerCase();
  const size = `${body.length} bytes`;
  if (isPng(body)) return `a truncated or corrupt PNG (${size})`;
  if (body[0] === 0xff && body[1] === 0xd8) return `a truncated or corrupt JPEG (${size})`;
  if (head.startsWith("<!doctype html") || head.startsWith("<html"))
    return `an HTML page (${size})`;
  if (head.startsWith("{") || head.startsWith("[")) return `a JSON body (${size})`;
  return `a body (${size})`;
}

function firstLine(text: string): string {
  return (text.split("\n")[0] ?? "").slice(0, 160);
}
