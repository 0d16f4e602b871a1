/**
 * Folder outputs that appear whole or not at all: a command writes into a staging folder beside
 * the destination (same file system, so the final renames are atomic) and the staging folder
 * replaces the destination only once everything is written. An interrupted or failed run leaves
 * the earlier output untouched and removes its staging folder (a kill -9 leaves a visible
 * `.partial-*` sibling that the next run ignores).
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { UserError } from "./errors.js";

/**
 * Runs `write(staging)` and then swaps the staging folder in as `outDir`. When `outDir` already
 * exists it may hold only `ownedFiles` (an earlier output of the same command): anything else is
 * someone's data, so the call refuses before writing rather than replace the folder.
 */
export async function writeFolderAtomically<T>(
  outDir: string,
  ownedFiles: readonly string[],
  write: (staging: string) => Promise<T>,
): Promise<T> {
  const target = resolve(outDir);
  const existing = await listFolder(target);
  if (existing !== undefined) {
    const foreign = existing.filter((name) => !ownedFiles.includes(name));
    if (foreign.length > 0) {
      throw new UserError(
        "USAGE",
        `${outDir} already holds files this command did not write (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""}); choose a new or empty folder`,
      );
    }
  }
  const tag = `${process.pid}-${randomBytes(3).toString("hex")}`;
  const staging = join(dirname(target), `.${basename(target)}.partial-${tag}`);
  await mkdir(staging, { recursive: true });
  let result: T;
  try {
    result = await write(staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  // rename() cannot replace a non-empty folder: move the old output aside first, then drop it.
  const retired = join(dirname(target), `.${basename(target)}.old-${tag}`);
  if (existing !== undefined) await rename(target, retired);
  try {
    await rename(staging, target);
  } catch (error) {
    if (existing !== undefined) await rename(retired, target);
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  if (existing !== undefined) await rm(retired, { recursive: true, force: true });
  return result;
}

/** The entries of a folder, or undefined when nothing is there; a file there is a usage error. */
async function listFolder(path: string): Promise<string[] | undefined> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  if (!info.isDirectory()) throw new UserError("USAGE", `${path} is a file, not a folder`);
  return readdir(path);
}
