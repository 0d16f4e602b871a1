/**
 * `models pull`: a model directory from the Hugging Face Hub, ready for the prompt engine.
 *
 * What is fetched: the repository's imagine-model.json and the ONNX decoder it names (or the
 * first known ONNX layout), or, for a plain Hugging Face GPT-2 export without imagine-model.json,
 * config.json and the decoder, after which an imagine-model.json is written from config.json.
 * External-data files beside the decoder (`<onnx>_data…`, `<onnx>.data`) come along. Tokenizer
 * files are not needed: the engine has GPT-2's tokenizer built in.
 *
 * Consistency: the revision is resolved to a commit first and every file is fetched at that
 * commit, so a push during the pull cannot mix versions. Everything is assembled in a staging
 * folder `<models>/.<name>.pull/` (resumable parts, verified files) and only a complete,
 * verified, loadable directory replaces `<models>/<name>/`: the old directory is renamed aside,
 * the staging folder renamed into its place, then the old one removed. A pull interrupted at
 * any point before that leaves the previous directory untouched; one interrupted between the
 * two renames is repaired by the next pull (the `.old` directory is put back). Per-file renames
 * into the live directory were rejected: a half-finished pull would mix a new config with an
 * old decoder. Files already in place and verified are hard-linked into the staging folder
 * (copied where links fail) rather than downloaded again.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import {
  copyFile,
  link,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  statfs,
  writeFile,
} from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { readModelDirectory } from "../prompt/modelDir.js";
import {
  diskCall,
  diskError,
  downloadFile,
  type FileProgress,
  hashFile,
  mismatch,
  sizeOf,
} from "./download.js";
import { HubClient, type HubClientOptions, type HubFile, isRepoId } from "./hub.js";
import { gpt2Architecture, METADATA_FILE, metadataFromHfConfig } from "./metadata.js";

/** Built-in names for `models pull NAME`. */
export const MODEL_ALIASES: Record<string, { repo: string; onnx: string; description: string }> = {
  /**
   * The paper's control arm, base GPT-2 without finetuning: transformers.js's ONNX export of
   * openai-community/gpt2. Layout confirmed on huggingface.co/Xenova/gpt2 (tree main): config.json
   * at the root, onnx/decoder_model_merged.onnx (optimum's merged decoder with KV cache and
   * use_cache_branch, ~500 MB, Xet/LFS-stored). Newer onnx/model*.onnx variants sit beside it.
   */
  gpt2: {
    repo: "Xenova/gpt2",
    onnx: "onnx/decoder_model_merged.onnx",
    description: "base GPT-2 (124M), ONNX export by Xenova",
  },
};

/** Looked for, in order, when neither an alias nor imagine-model.json names the decoder. */
export const ONNX_LAYOUTS = [
  // The same order as src/core/prompt/modelDir.ts, so the pulled file is the one it would load.
  "model.onnx",
  "decoder_model_merged.onnx",
  "onnx/decoder_model_merged.onnx",
  "decoder_with_past_model.onnx",
  "onnx/decoder_with_past_model.onnx",
];

/** The pull's record in the model directory (and, with complete: false, in the staging one). */
export const MANIFEST_FILE = ".pull.json";

export interface PulledFile {
  path: string;
  bytes: number;
  sha256: string;
  /** Already in place and verified: not downloaded again. */
  skipped: boolean;
}

export interface PullResult {
  name: string;
  repo: string;
  /** The commit the requested revision resolved to. */
  revision: string;
  dir: string;
  files: PulledFile[];
}

export type FileEvent =
  | { kind: "start"; path: string; total: number; resumedFrom: number }
  | { kind: "progress"; progress: FileProgress }
  | { kind: "done"; file: PulledFile };

export interface PullOptions extends Omit<HubClientOptions, "retry"> {
  /** A built-in alias (gpt2) or a repository id (owner/name). */
  source: string;
  /** Branch, tag or commit; default main. */
  revision?: string;
  /** The models directory; the model goes to `<modelsDir>/<name>`. */
  modelsDir: string;
  /** Folder name; default the alias or the repository's name. */
  name?: string;
  /** Replace an existing directory that a pull did not write. */
  force?: boolean;
  /** For a written imagine-model.json; default DEFAULT_MEAN_CAPTION_TOKENS. */
  meanCaptionTokens?: number;
  retry?: HubClientOptions["retry"];
  idleTimeoutMs?: number;
  onFile?: (event: FileEvent) => void;
  now?: () => Date;
}

const FOLDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function resolveSource(source: string): { repo: string; onnx?: string; name: string } {
  const alias = MODEL_ALIASES[source];
  if (alias) return { repo: alias.repo, onnx: alias.onnx, name: source };
  if (isRepoId(source)) return { repo: source, name: source.split("/")[1] as string };
  throw new UserError(
    "USAGE",
    `"${source}" is neither a built-in model (${Object.keys(MODEL_ALIASES).join(", ")}) nor a Hugging Face repository id (owner/name).`,
  );
}

export async function pullModel(options: PullOptions): Promise<PullResult> {
  const source = resolveSource(options.source);
  const name = options.name ?? source.name;
  if (!FOLDER_NAME.test(name) || name.endsWith(".")) {
    throw new UserError(
      "USAGE",
      `"${name}" is not a usable folder name (letters, digits, ".", "_", "-"; no leading dot).`,
    );
  }
  const modelsDir = resolve(options.modelsDir);
  await diskCall(modelsDir, () => mkdir(modelsDir, { recursive: true }));
  const target = join(modelsDir, name);
  const staging = join(modelsDir, `.${name}.pull`);
  const old = join(modelsDir, `.${name}.old`);
  const release = await acquireLock(join(modelsDir, `.${name}.lock`), target);
  try {
    // A pull that died between its two renames left the previous directory aside.
    if (!existsSync(target) && existsSync(old)) await diskCall(old, () => rename(old, target));
    if (existsSync(target)) checkReplaceable(target, options.force === true);

    const hub = new HubClient(options);
    const { repo } = source;
    const revision = options.revision ?? "main";
    const commit = await hub.resolveRevision(repo, revision);
    const listing = new Map((await hub.listFiles(repo, commit)).map((file) => [file.path, file]));
    await prepareStaging(staging, repo, commit);

    const ctx: Context = { hub, repo, commit, target, staging, options };
    const pulled: PulledFile[] = [];
    const fileAt = (path: string, why: string): HubFile => {
      const file = listing.get(path);
      if (!file) {
        throw new UserError(
          "MODEL_DIR_INVALID",
          `${repo}@${commit.slice(0, 12)} has no ${path} (${why}).`,
        );
      }
      return file;
    };

    let onnx: string;
    let config: unknown;
    if (listing.has(METADATA_FILE)) {
      const file = fileAt(METADATA_FILE, "");
      pulled.push(await obtain(ctx, file));
      const metadata = readJson(join(staging, METADATA_FILE), `${repo}/${METADATA_FILE}`);
      const named = (metadata as { onnx?: unknown } | null)?.onnx;
      if (named !== undefined && (typeof named !== "string" || !safePath(named))) {
        throw new UserError(
          "MODEL_DIR_INVALID",
          `${repo}/${METADATA_FILE}: "onnx" must be a relative path inside the repository.`,
        );
      }
      onnx = named ?? firstLayout(listing, repo);
    } else {
      pulled.push(
        await obtain(
          ctx,
          fileAt("config.json", "needed to describe a model without imagine-model.json"),
        ),
      );
      config = readJson(join(staging, "config.json"), `${repo}/config.json`);
      gpt2Architecture(config, `${repo}/config.json`); // fail before the large download
      onnx = source.onnx && listing.has(source.onnx) ? source.onnx : firstLayout(listing, repo);
    }
    const rest = [fileAt(onnx, "the ONNX decoder"), ...externalData(listing, onnx)];
    await checkFreeSpace(ctx, rest);
    for (const file of rest) pulled.push(await obtain(ctx, file));

    if (config !== undefined) {
      pulled.push(
        await writeMetadata(ctx, config, onnx, {
          baseModel: repo,
          revision: commit,
          pulledAt: (options.now?.() ?? new Date()).toISOString(),
          ...(revision !== commit ? { requestedRevision: revision } : {}),
          endpoint: hub.endpoint,
        }),
      );
    }

    // The directory must load as the engine will load it, or the old one stays.
    readModelDirectory(staging);
    const result: PullResult = { name, repo, revision: commit, dir: target, files: pulled };
    if (
      existsSync(target) &&
      pulled.every((file) => file.skipped) &&
      sameManifest(target, repo, commit)
    ) {
      await rm(staging, { recursive: true, force: true });
      return result;
    }
    await diskCall(staging, () =>
      writeFile(
        join(staging, MANIFEST_FILE),
        `${JSON.stringify({ repo, revision: commit, requestedRevision: revision, complete: true, files: pulled }, null, 2)}\n`,
      ),
    );
    await swapInto(staging, target, old);
    return result;
  } finally {
    await release();
  }
}

interface Context {
  hub: HubClient;
  repo: string;
  commit: string;
  target: string;
  staging: string;
  options: PullOptions;
}

/** One file into the staging folder: reused when verified in place, else downloaded. */
async function obtain(ctx: Context, file: HubFile): Promise<PulledFile> {
  const staged = join(ctx.staging, file.path);
  const live = join(ctx.target, file.path);
  const emit = ctx.options.onFile;
  const done = (bytes: number, sha256: string, skipped: boolean): PulledFile => {
    const pulled = { path: file.path, bytes, sha256, skipped };
    emit?.({ kind: "done", file: pulled });
    return pulled;
  };
  // Verified in an earlier, interrupted run of this pull.
  if (existsSync(staged)) {
    const hashes = await hashFile(staged, file);
    // Skipped when it is the live file hard-linked by that run, not a fresh download.
    if (!mismatch(file, hashes)) return done(hashes.bytes, hashes.sha256, sameInode(staged, live));
    await rm(staged, { force: true });
  }
  // Already in place in the live directory.
  if (existsSync(live) && (await sizeOf(live)) === file.size) {
    const hashes = await hashFile(live, file);
    if (!mismatch(file, hashes)) {
      await linkOrCopy(live, staged);
      return done(hashes.bytes, hashes.sha256, true);
    }
  }
  const resumedFrom = await sizeOf(`${staged}.part`);
  emit?.({ kind: "start", path: file.path, total: file.size, resumedFrom });
  const verified = await downloadFile({
    hub: ctx.hub,
    repo: ctx.repo,
    commit: ctx.commit,
    file,
    target: staged,
    idleTimeoutMs: ctx.options.idleTimeoutMs,
    onProgress: emit ? (progress) => emit({ kind: "progress", progress }) : undefined,
  });
  return done(verified.bytes, verified.sha256, false);
}

/** imagine-model.json from config.json; an existing one for the same commit is kept (edits too). */
async function writeMetadata(
  ctx: Context,
  config: unknown,
  onnx: string,
  provenance: { baseModel: string; revision: string; pulledAt: string; [key: string]: unknown },
): Promise<PulledFile> {
  const staged = join(ctx.staging, METADATA_FILE);
  const live = join(ctx.target, METADATA_FILE);
  let skipped = false;
  const existing = existsSync(live) ? tryReadJson(live) : undefined;
  const previous = (
    existing as { provenance?: { baseModel?: unknown; revision?: unknown } } | undefined
  )?.provenance;
  if (
    ctx.options.meanCaptionTokens === undefined &&
    previous?.baseModel === ctx.repo &&
    previous?.revision === ctx.commit
  ) {
    await rm(staged, { force: true });
    await linkOrCopy(live, staged);
    skipped = true;
  } else {
    const metadata = metadataFromHfConfig(config, {
      onnx,
      provenance,
      meanCaptionTokens: ctx.options.meanCaptionTokens,
      source: `${ctx.repo}/config.json`,
    });
    await diskCall(staged, () => writeFile(staged, `${JSON.stringify(metadata, null, 2)}\n`));
  }
  const hashes = await hashFile(staged);
  const file = { path: METADATA_FILE, bytes: hashes.bytes, sha256: hashes.sha256, skipped };
  ctx.options.onFile?.({ kind: "done", file });
  return file;
}

function firstLayout(listing: Map<string, HubFile>, repo: string): string {
  const found = ONNX_LAYOUTS.find((path) => listing.has(path));
  if (found) return found;
  const onnxFiles = [...listing.keys()].filter((path) => path.endsWith(".onnx"));
  throw new UserError(
    "MODEL_DIR_INVALID",
    `${repo} has no ONNX GPT-2 decoder in a known layout (looked for ${ONNX_LAYOUTS.join(", ")})` +
      (onnxFiles.length > 0
        ? `; it has ${onnxFiles.slice(0, 8).join(", ")}. Publish an imagine-model.json whose "onnx" names the KV-cache decoder.`
        : "; it has no .onnx file at all. Export one with training/export_onnx.py."),
  );
}

/** ONNX external-data files stored beside the decoder (models over 2 GB). */
function externalData(listing: Map<string, HubFile>, onnx: string): HubFile[] {
  return [...listing.values()].filter(
    (file) =>
      (file.path.startsWith(`${onnx}_data`) || file.path === `${onnx}.data`) && safePath(file.path),
  );
}

async function checkFreeSpace(ctx: Context, files: HubFile[]): Promise<void> {
  let needed = 0;
  for (const file of files) {
    if (existsSync(join(ctx.target, file.path)) || existsSync(join(ctx.staging, file.path)))
      continue;
    needed += file.size - (await sizeOf(join(ctx.staging, `${file.path}.part`)));
  }
  let free: number;
  try {
    const fs = await statfs(ctx.staging);
    free = Number(fs.bavail) * Number(fs.bsize);
  } catch {
    return; // Not knowable here; the writes will say.
  }
  if (needed > free) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `Not enough disk space in ${dirname(ctx.target)}: the pull needs ${formatBytes(needed)}, ${formatBytes(free)} are free. Free some space or pull into another --dir.`,
    );
  }
}

function checkReplaceable(target: string, force: boolean): void {
  if (!statSync(target).isDirectory()) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${target} exists and is not a folder; remove it or choose another --name.`,
    );
  }
  if (!force && !existsSync(join(target, MANIFEST_FILE))) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${target} exists and was not written by models pull; it would be replaced. Choose another --name, or pass --force to replace it.`,
    );
  }
}

function sameManifest(target: string, repo: string, commit: string): boolean {
  const manifest = tryReadJson(join(target, MANIFEST_FILE)) as
    | { repo?: unknown; revision?: unknown }
    | undefined;
  return manifest?.repo === repo && manifest?.revision === commit;
}

async function prepareStaging(staging: string, repo: string, commit: string): Promise<void> {
  const state = tryReadJson(join(staging, MANIFEST_FILE)) as
    | { repo?: unknown; revision?: unknown }
    | undefined;
  if (state?.repo === repo && state?.revision === commit) return; // resume
  await diskCall(staging, async () => {
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    await writeFile(
      join(staging, MANIFEST_FILE),
      `${JSON.stringify({ repo, revision: commit, complete: false })}\n`,
    );
  });
}

async function swapInto(staging: string, target: string, old: string): Promise<void> {
  await diskCall(target, async () => {
    await rm(old, { recursive: true, force: true });
    if (existsSync(target)) await rename(target, old);
    await rename(staging, target);
    await rm(old, { recursive: true, force: true });
  });
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  await diskCall(to, async () => {
    await mkdir(dirname(to), { recursive: true });
    await rm(to, { force: true });
    try {
      await link(from, to);
    } catch {
      await copyFile(from, to);
    }
  });
}

/** One pull per model folder at a time; a lock left by a dead process is taken over. */
async function acquireLock(path: string, target: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw diskError(path, error);
      const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        throw new UserError(
          "USAGE",
          `Another models pull (process ${pid}) is writing ${target}. Wait for it to finish, or delete ${path} if that process is gone.`,
        );
      }
      await rm(path, { force: true });
    }
  }
  throw new UserError("USAGE", `Could not take the lock ${path}; delete it and retry.`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sameInode(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

function safePath(path: string): boolean {
  return (
    !path.startsWith("/") &&
    !path.includes("\\") &&
    path.split("/").every((part) => part !== "" && part !== "." && part !== "..")
  );
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${what} is not valid JSON: ${(error as Error).message}`,
    );
  }
}

function tryReadJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Decimal units, as the Hub's file pages show sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}
