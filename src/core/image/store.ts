/**
 * Where rendered images live: `<dataDir>/images/<YYYY-MM-DD>/<id>.png`, the date being the
 * generation's creation day in UTC. The PNG gets A1111's "parameters" chunk (never the arm: the
 * caller does not pass it and png.ts refuses it) and is written atomically — to a temporary
 * file in the same folder, then renamed — so a reader never sees half an image.
 */

import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { BotError } from "../errors.js";
import type { Generation } from "../types.js";
import { formatA1111Parameters, type PngParameters, withParametersChunk } from "./png.js";

/** Generation ids become file names: letters, digits, `-` and `_` only. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Writes the PNG with its parameters chunk and returns its path relative to dataDir, with `/`
 * separators on every platform (the form stored in Generation.image.path).
 */
/** Where a PNG was stored (relative to the data directory) and the bytes written there. */
export interface SavedPng {
  path: string;
  png: Buffer;
}

export async function saveImage(
  dataDir: string,
  generation: Pick<Generation, "id" | "createdAt">,
  png: Buffer,
  parameters: PngParameters,
): Promise<SavedPng> {
  if (!SAFE_ID.test(generation.id)) {
    throw new BotError(
      "GENERATION_FAILED",
      `Generation id "${generation.id}" cannot be a file name (letters, digits, - and _ only)`,
    );
  }
  const created = new Date(generation.createdAt);
  if (Number.isNaN(created.getTime())) {
    throw new BotError("GENERATION_FAILED", `createdAt "${generation.createdAt}" is not a date`);
  }
  const day = created.toISOString().slice(0, 10);
  const bytes = withParametersChunk(png, formatA1111Parameters(parameters));

  const folder = join(dataDir, "images", day);
  await mkdir(folder, { recursive: true });
  const finalPath = join(folder, `${generation.id}.png`);
  const tempPath = join(folder, `.${generation.id}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(tempPath, "wx");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tempPath, finalPath);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
  return { path: `images/${day}/${generation.id}.png`, png: bytes };
}
