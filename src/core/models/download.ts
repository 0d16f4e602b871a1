/**
 * One file from the Hub onto disk, resumable and verified.
 *
 * Bytes go to `<file>.part`. When a part exists, the request asks for the rest with
 * `Range: bytes=<size>-` and appends on 206; a 200 (the server ignored the range) restarts the
 * part from zero. Each attempt of withRetry resumes from whatever the previous one wrote, so a
 * connection cut half-way costs only the missing bytes. When the part has the expected size it
 * is hashed from disk (SHA-256, plus the git blob SHA-1 for non-LFS files) and renamed into
 * place only if it matches; a mismatch deletes the part and fails.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { BotError, UserError } from "../errors.js";
import { RemoteCallError, withRetry } from "../retry.js";
import { type HubClient, type HubFile, unreachable } from "./hub.js";

export const PART_SUFFIX = ".part";

export interface FileProgress {
  path: string;
  /** Bytes on disk so far, including those resumed from an earlier part. */
  bytes: number;
  total: number;
  /** Bytes that were already on disk when this download started. */
  resumedFrom: number;
}

export interface DownloadOptions {
  hub: HubClient;
  repo: string;
  commit: string;
  file: HubFile;
  /** Final path; the part is `${target}.part`. */
  target: string;
  onProgress?: (progress: FileProgress) => void;
  /** A download that receives nothing for this long is aborted and retried. */
  idleTimeoutMs?: number;
}

export interface Verified {
  sha256: string;
  bytes: number;
}

/** Downloads `file` to `target` (resuming its part), verifies it and renames it into place. */
export async function downloadFile(options: DownloadOptions): Promise<Verified> {
  const { file, target } = options;
  const part = `${target}${PART_SUFFIX}`;
  await diskCall(target, () => mkdir(dirname(target), { recursive: true }));
  let resumedFrom: number | undefined;
  await withRetry(async () => {
    const have = await sizeOf(part);
    resumedFrom ??= have;
    if (have === file.size) return;
    // Longer than the file: not a prefix of it, start over.
    if (have > file.size) await diskCall(part, () => rm(part, { force: true }));
    await fetchInto(options, part, have > file.size ? 0 : have, resumedFrom);
  }, options.hub.retry);

  const verified = await hashFile(part, file);
  const problem = mismatch(file, verified);
  if (problem) {
    await rm(part, { force: true });
    throw new RemoteCallError(
      `${options.repo}/${file.path}: the download is corrupt (${problem}); the partial file was deleted, run the pull again.`,
      { retryable: false },
    );
  }
  await diskCall(target, () => rename(part, target));
  return { sha256: verified.sha256, bytes: verified.bytes };
}

async function fetchInto(
  options: DownloadOptions,
  part: string,
  offset: number,
  resumedFrom: number,
): Promise<void> {
  const { hub, repo, commit, file } = options;
  const idleMs = options.idleTimeoutMs ?? 60_000;
  const controller = new AbortController();
  const parent = hub.retry.signal;
  const onAbort = () => controller.abort(parent?.reason);
  parent?.addEventListener("abort", onAbort, { once: true });
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () =>
        controller.abort(
          new RemoteCallError(`${repo}/${file.path}: no data for ${idleMs} ms`, {
            retryable: true,
          }),
        ),
      idleMs,
    );
  };
  const url = hub.resolveUrl(repo, commit, file.path);
  try {
    arm();
    let response: Response;
    try {
      response = await fetch(url, {
        headers: hub.headers(offset > 0 ? { range: `bytes=${offset}-` } : {}),
        signal: controller.signal,
      });
    } catch (error) {
      if (controller.signal.aborted) throw networkError(controller.signal, file.path, error);
      throw unreachable(hub.endpoint, error);
    }
    let start = offset;
    if (response.status === 200) {
      start = 0; // The range was ignored: the whole file follows.
    } else if (response.status === 206) {
      const range = /^bytes (\d+)-/.exec(response.headers.get("content-range") ?? "");
      if (!range || Number(range[1]) !== offset) {
        await response.body?.cancel().catch(() => {});
        await rm(part, { force: true });
        throw new RemoteCallError(
          `${repo}/${file.path}: the server resumed at the wrong offset (${response.headers.get("content-range")}); restarting`,
          { retryable: true },
        );
      }
    } else if (response.status === 416) {
      // Our part is not a prefix the server recognises: start over.
      await response.body?.cancel().catch(() => {});
      await rm(part, { force: true });
      throw new RemoteCallError(`${repo}/${file.path}: range not satisfiable; restarting`, {
        retryable: true,
      });
    } else {
      await response.body?.cancel().catch(() => {});
      throw hub.errorFor(response, { repo, revision: commit, path: file.path });
    }
    if (!response.body) throw new RemoteCallError(`${url} sent no body`, { retryable: true });

    const handle = await diskCall(part, () => open(part, start === 0 ? "w" : "a"));
    let bytes = start;
    try {
      const reader = response.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (error) {
          throw networkError(controller.signal, `${repo}/${file.path}`, error);
        }
        if (chunk.done) break;
        arm();
        if (bytes + chunk.value.byteLength > file.size) {
          await reader.cancel().catch(() => {});
          throw new RemoteCallError(
            `${repo}/${file.path}: the server sent more than the ${file.size} bytes the listing gives`,
            { retryable: false },
          );
        }
        await diskCall(part, () => handle.write(chunk.value));
        bytes += chunk.value.byteLength;
        options.onProgress?.({ path: file.path, bytes, total: file.size, resumedFrom });
      }
    } finally {
      await handle.close();
    }
    if (bytes !== file.size) {
      throw new RemoteCallError(
        `${repo}/${file.path}: the response ended at ${bytes} of ${file.size} bytes`,
        { retryable: true },
      );
    }
  } finally {
    clearTimeout(idle);
    parent?.removeEventListener("abort", onAbort);
  }
}

/** A transport failure as a retryable error, or the abort that caused it. */
function networkError(signal: AbortSignal, what: string, error: unknown): Error {
  if (signal.aborted) {
    const reason = signal.reason;
    if (reason instanceof BotError) return reason;
    return new BotError("ABORTED", `${what}: the download was cancelled`, { cause: error });
  }
  return new RemoteCallError(
    `${what}: the connection failed (${(error as Error).message ?? String(error)})`,
    { retryable: true, cause: error },
  );
}

export interface FileHashes {
  bytes: number;
  sha256: string;
  /** Git blob SHA-1, computed only when the listing gives one to check. */
  gitOid?: string;
}

/** Streams a file through SHA-256 (and the git blob SHA-1 when `file` has a git oid). */
export async function hashFile(path: string, file?: Pick<HubFile, "gitOid">): Promise<FileHashes> {
  const sha256 = createHash("sha256");
  const size = await sizeOf(path);
  const sha1 = file?.gitOid ? createHash("sha1").update(`blob ${size}\0`) : undefined;
  let bytes = 0;
  await diskCall(path, async () => {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      sha256.update(chunk as Buffer);
      sha1?.update(chunk as Buffer);
      bytes += (chunk as Buffer).byteLength;
    }
  });
  return {
    bytes,
    sha256: sha256.digest("hex"),
    ...(sha1 ? { gitOid: sha1.digest("hex") } : {}),
  };
}

/** Why the hashes do not match the listing, or undefined when they do. */
export function mismatch(file: HubFile, hashes: FileHashes): string | undefined {
  if (hashes.bytes !== file.size) return `${hashes.bytes} bytes, expected ${file.size}`;
  if (file.sha256 && hashes.sha256 !== file.sha256.toLowerCase()) {
    return `SHA-256 ${hashes.sha256}, expected ${file.sha256}`;
  }
  if (file.gitOid && hashes.gitOid !== undefined && hashes.gitOid !== file.gitOid.toLowerCase()) {
    return `git blob id ${hashes.gitOid}, expected ${file.gitOid}`;
  }
  return undefined;
}

export async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw diskError(path, error);
  }
}

const DISK_HINTS: Record<string, string> = {
  ENOSPC: "no space left on the device; free some space or pull into another --dir",
  EDQUOT: "disk quota exceeded; free some space or pull into another --dir",
  EACCES: "permission denied; choose a writable --dir",
  EPERM: "operation not permitted; choose a writable --dir",
  EROFS: "read-only file system; choose a writable --dir",
  EISDIR: "a folder is in the way",
  ENOTDIR: "a file is in the way of a folder",
};

/** A file-system failure with the path and what to do; user-fixable ones as UserError. */
export function diskError(path: string, error: unknown): Error {
  if (error instanceof BotError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? "";
  const hint = DISK_HINTS[code];
  if (hint) {
    return new UserError("MODEL_DIR_INVALID", `Cannot write ${path}: ${hint} (${code}).`, {
      cause: error,
    });
  }
  return new BotError(
    "MODEL_DIR_INVALID",
    `Disk error at ${path}: ${(error as Error).message ?? String(error)}`,
    { cause: error },
  );
}

export async function diskCall<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw diskError(path, error);
  }
}
