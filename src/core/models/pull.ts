/**
 * `models pull`: a model directory from the Hugging Face Hub, ready for the prompt engine.
 *
 * What is fetched: the repository's imagine-model.json and the ONNX decoder it names (or the
 * first known ONNX layout), or, for a plain Hugging Face GPT-2 export without imagine-model.json,
 * config.json and the decoder, after which an imagine-model.json is written from config.json.
 * External-data files beside the decoder (`<onnx>_data…`, `<onnx>.data`) come along. Tokenizer
 * files are not needed: the engine has GPT-2's tokenizer built in.
 *
 * External data: a decoder over 2 GB keeps its weights in other files that the .onnx names
 * (optimum writes `<onnx>_data`, older exports one file per constant, e.g. gpt2-large's
 * `Constant_164_attr__value`). Those names are read from the downloaded graph itself
 * (TensorProto.external_data, key "location"), so whatever layout an exporter chose comes along.
 *
 * Merged decoders: a Hugging Face "merged" decoder (decoder_model_merged.onnx: an If on
 * use_cache_branch over a with-past and a no-past copy of the decoder) makes onnxruntime prepack
 * the weights once per branch (~560 MB more resident memory for GPT-2 small). Once downloaded and
 * verified it is unmerged in the staging folder (unmergeOnnxDecoder: the with-past branch inlined,
 * the If dropped, external data untouched) and stored under the same path, so imagine-model.json
 * and the engine's search order still find it; weights it stored inside the graph move to
 * `<decoder>.unmerged.data` (external data, which onnxruntime maps rather than keeping a protobuf
 * copy beside the weights it prepacks). The manifest records the converted files' hashes and the
 * Hub file they were made from (unmergedFrom); a later pull reuses converted files whose source
 * is unchanged, and a pull interrupted after the conversion resumes from them (the staging
 * manifest records them before the graph is renamed into place).
 *
 * Conversion: a repository with only PyTorch weights (model.safetensors or pytorch_model.bin,
 * e.g. openai-community/gpt2-xl) is converted here by training/export_onnx.py, when the Python
 * interpreter (IMAGINE_PYTHON, default /usr/bin/python3) has torch; torch is checked before the
 * weights are downloaded, so a machine without it learns that in a second, not after 6 GB.
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

import { execFile } from "node:child_process";

import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
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
import { dirname, join, posix, resolve } from "node:path";
import { promisify } from "node:util";
import { PACKAGE_ROOT } from "../config.js";
import { UserError } from "../errors.js";
import { readSdModelDirectory, SD_REQUIRED_FILES } from "../image/local/modelDir.js";
import { readModelDirectory } from "../prompt/modelDir.js";
import { unmergeOnnxDecoder } from "../prompt/onnxDecoder.js";
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
import {
  type CaptionTags,
  DEFAULT_MEAN_CAPTION_TOKENS,
  gpt2Architecture,
  METADATA_FILE,
  metadataFromHfConfig,
} from "./metadata.js";

export interface ModelAlias {
  /** What the model is for; default "prompt" (a GPT-2 arm). */
  kind?: "prompt" | "stable-diffusion";
  repo: string;
  /** The decoder to fetch; absent: the first known layout, else local conversion of the weights. */
  onnx?: string;
  description: string;
  /**
   * The licence on the model page when the alias was written. The Hub's own statement
   * (cardData.license) is shown instead when it gives one.
   */
  license: string;
  /** Tags the model was trained with; null for one that continues plain text. */
  tags: CaptionTags | null;
  /** The cap on new tokens written into imagine-model.json (else the mean caption length). */
  maxNewTokens?: number;
}

/**
 * Built-in names for `models pull NAME`. Layouts and licences as listed on huggingface.co (tree
 * main) when they were written; `models pull` resolves each to a commit and checks every file
 * against the Hub's listing, so a changed layout fails with the files it found.
 */
export const MODEL_ALIASES: Record<string, ModelAlias> = {
  /**
   * The paper's control arm, base GPT-2 without finetuning: transformers.js's ONNX export of
   * openai-community/gpt2. Xenova/gpt2: config.json at the root, onnx/decoder_model_merged.onnx
   * (optimum's merged decoder with KV cache and use_cache_branch, ~650 MB). Newer
   * onnx/model*.onnx variants sit beside it.
   */
  gpt2: {
    repo: "Xenova/gpt2",
    onnx: "onnx/decoder_model_merged.onnx",
    description: "base GPT-2 (124M), ONNX export by Xenova",
    license: "mit",
    tags: null,
  },
  /** openai-community/gpt2-medium: onnx/decoder_model_merged.onnx, one 1.63 GB file (optimum). */
  "gpt2-medium": {
    repo: "openai-community/gpt2-medium",
    onnx: "onnx/decoder_model_merged.onnx",
    description: "base GPT-2 medium (355M), optimum's ONNX export in the OpenAI repository",
    license: "mit",
    tags: null,
  },
  /**
   * openai-community/gpt2-large: onnx/decoder_model_merged.onnx (5.3 MB graph) with its weights
   * in decoder_model_merged.onnx_data (3.35 GB) and Constant_*_attr__value files beside it.
   */
  "gpt2-large": {
    repo: "openai-community/gpt2-large",
    onnx: "onnx/decoder_model_merged.onnx",
    description: "base GPT-2 large (774M), optimum's ONNX export in the OpenAI repository",
    license: "mit",
    tags: null,
  },
  /**
   * The paper's base model. openai-community/gpt2-xl has no ONNX export (config.json,
   * model.safetensors 6.43 GB, pytorch_model.bin, TF/Flax/Rust weights): converted here.
   */
  "gpt2-xl": {
    repo: "openai-community/gpt2-xl",
    description: "base GPT-2 XL (1.5B), the paper's base model; converted from model.safetensors",
    license: "mit",
    tags: null,
  },
  /**
   * A published prompt generator: Gustavosta/MagicPrompt-Stable-Diffusion (GPT-2 124M finetuned
   * on ~80,000 Lexica.art prompts, MIT), as exported for transformers.js by
   * paralaif/MagicPrompt-Stable-Diffusion-ONNX (MIT; config.json at the root, decoders under
   * onnx/). It continues a subject in "prompt-speak" without tags; its prompts run longer than
   * captions, so the cap is above the base models' 20.
   */
  magicprompt: {
    repo: "paralaif/MagicPrompt-Stable-Diffusion-ONNX",
    description: "MagicPrompt-Stable-Diffusion (GPT-2 finetuned on Lexica prompts), ONNX",
    license: "mit",
    tags: null,
    maxNewTokens: 60,
  },
  /**
   * Image model for IMAGE_BACKEND=local: SD-Turbo (stabilityai/sd-turbo, 512×512, 1–4 steps, no
   * guidance) as TensorStack exported it for OnnxStack, which runs it on CPU and DirectML:
   * model_index.json, scheduler/, tokenizer/, text_encoder/, unet/, vae_decoder/ (+ config.json),
   * and vae_encoder/ and controlnet/ (not fetched). Not onnxruntime/sd-turbo: Olive's exports
   * there are optimized for the CUDA execution provider (its sdxl-turbo sibling says it cannot
   * run on CPU). Licence: Stability AI Non-Commercial Research Community License.
   */
  "sd-turbo": {
    kind: "stable-diffusion",
    repo: "TensorStack/SD-Turbo-onnx",
    description: "SD-Turbo image model (1–4 steps, 512×512), ONNX export by TensorStack",
    license: "sai-nc-community",
    tags: null,
  },
  /**
   * The paper's image model family. stabilityai/stable-diffusion-2 (SD 2.0) publishes no ONNX
   * export (its discussion #59 asks for one), so this is SD 2.1 at 768×768 with v-prediction,
   * the same architecture and text encoder, as optimum exported it:
   * IlyasMoutawwakil/stable-diffusion-2-1-onnx (unet/model.onnx with unet/model.onnx_data).
   */
  sd21: {
    kind: "stable-diffusion",
    repo: "IlyasMoutawwakil/stable-diffusion-2-1-onnx",
    description: "Stable Diffusion 2.1 (768×768, v-prediction), optimum's ONNX export",
    license: "openrail++",
    tags: null,
  },
};

/**
 * What a Stable Diffusion pull fetches: the diffusers ONNX layout the local backend reads
 * (src/core/image/local/modelDir.ts), plus each model's external data. vae_encoder,
 * safety_checker and feature_extractor are not needed for text-to-image and stay behind.
 */
export const SD_REQUIRED: readonly string[] = SD_REQUIRED_FILES;
const SD_OPTIONAL = [
  "tokenizer/tokenizer.json",
  "tokenizer/vocab.json",
  "tokenizer/merges.txt",
  "tokenizer/special_tokens_map.json",
  "text_encoder/config.json",
  "unet/config.json",
  "vae_decoder/config.json",
];

/** A repository in the diffusers layout rather than a GPT-2 export. */
function isStableDiffusionListing(listing: Map<string, HubFile>): boolean {
  return listing.has("model_index.json") && listing.has("unet/model.onnx");
}

/** Looked for, in order, when neither an alias nor imagine-model.json names the decoder. */
export const ONNX_LAYOUTS = [
  // The same order as src/core/prompt/modelDir.ts, so the pulled file is the one it would load.
  "model.onnx",
  "decoder_model_merged.onnx",
  "onnx/decoder_model_merged.onnx",
  "decoder_with_past_model.onnx",
  "onnx/decoder_with_past_model.onnx",
  // transformers.js v3's name for the merged decoder; pulled directories name it in
  // imagine-model.json, so the engine's own search order does not need it.
  "onnx/model.onnx",
];

/** PyTorch weights a repository without ONNX may have, in order of preference. */
export const WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin"];

/** What a conversion writes: export_onnx.py's file name. */
const CONVERTED_ONNX = "model.onnx";

/** The Python that converts PyTorch weights: IMAGINE_PYTHON, else Debian's. */
export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  return env.IMAGINE_PYTHON?.trim() || "/usr/bin/python3";
}

/** The pull's record in the model directory (and, with complete: false, in the staging one). */
export const MANIFEST_FILE = ".pull.json";

export interface PulledFile {
  path: string;
  bytes: number;
  sha256: string;
  /** Already in place and verified: not downloaded again. */
  skipped: boolean;
  /** A merged decoder unmerged on pull: the Hub's file it was made from (bytes, sha256 above are the result's). */
  unmergedFrom?: SourceFile;
}

/** The Hub file a converted one was made from. */
export interface SourceFile {
  bytes: number;
  sha256: string;
}

export interface PullResult {
  /** "stable-diffusion": an image model for IMAGE_BACKEND=local, not a prompt arm. */
  kind: "prompt" | "stable-diffusion";
  name: string;
  repo: string;
  /** The commit the requested revision resolved to. */
  revision: string;
  dir: string;
  files: PulledFile[];
  /** The model's licence: the Hub's statement, else the alias table's; null when neither says. */
  license: string | null;
  /** The PyTorch weights converted to ONNX here, when the repository had no ONNX export. */
  convertedFrom?: string;
}

export type FileEvent =
  | { kind: "start"; path: string; total: number; resumedFrom: number }
  | { kind: "progress"; progress: FileProgress }
  | { kind: "done"; file: PulledFile }
  | { kind: "convert"; from: string }
  | { kind: "unmerge"; path: string };

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
  /** For repositories with only PyTorch weights: the interpreter and its environment. */
  converter?: { python?: string; env?: NodeJS.ProcessEnv };
  /** Keep converted PyTorch weights beside the ONNX (a checkpoint finetune.py can start from). */
  keepWeights?: boolean;
}

const FOLDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function resolveSource(source: string): {
  repo: string;
  onnx?: string;
  name: string;
  alias?: ModelAlias;
} {
  const alias = Object.hasOwn(MODEL_ALIASES, source) ? MODEL_ALIASES[source] : undefined;
  if (alias) return { repo: alias.repo, onnx: alias.onnx, name: source, alias };
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
    const info = await hub.revisionInfo(repo, revision);
    const commit = info.sha;
    const license = info.license ?? source.alias?.license ?? null;
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

    if (source.alias?.kind === "stable-diffusion" || isStableDiffusionListing(listing)) {
      for (const file of await stableDiffusionFiles(ctx, listing, fileAt)) pulled.push(file);
      // The directory must read as the local backend will read it, or the old one stays.
      readSdModelDirectory(staging);
      return await finish(
        ctx,
        old,
        {
          kind: "stable-diffusion",
          name,
          repo,
          revision: commit,
          dir: target,
          files: pulled,
          license,
        },
        revision,
      );
    }

    let onnx: string;
    let config: unknown;
    let convertedFrom: string | undefined;
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
      const found = source.onnx && listing.has(source.onnx) ? source.onnx : findLayout(listing);
      const weights = WEIGHT_FILES.find((path) => listing.has(path));
      if (found === undefined && weights === undefined) firstLayout(listing, repo); // throws
      onnx = found ?? CONVERTED_ONNX;
      convertedFrom = found === undefined ? weights : undefined;
    }
    const provenance = {
      baseModel: repo,
      revision: commit,
      pulledAt: (options.now?.() ?? new Date()).toISOString(),
      ...(revision !== commit ? { requestedRevision: revision } : {}),
      endpoint: hub.endpoint,
      license,
    };
    if (convertedFrom !== undefined) {
      pulled.push(
        ...(await convertWeights(
          ctx,
          fileAt(convertedFrom, "PyTorch weights"),
          provenance,
          source.alias,
        )),
      );
    } else {
      const decoder = fileAt(onnx, "the ONNX decoder");
      const rest = [decoder, ...externalData(listing, onnx)];
      await checkFreeSpace(ctx, rest);
      for (const file of rest) {
        if (file === decoder) pulled.push(...(await obtainDecoder(ctx, file)));
        else pulled.push(await obtain(ctx, file));
      }
      // Whatever else the graph names as external data (known only once it is here).
      const have = new Set(pulled.map((file) => file.path));
      for (const location of await externalDataLocations(join(staging, onnx))) {
        const path = posix.normalize(posix.join(posix.dirname(onnx), location));
        if (have.has(path)) continue;
        if (!safePath(path)) {
          throw new UserError(
            "MODEL_DIR_INVALID",
            `${repo}/${onnx} names external data outside the repository (${location}).`,
          );
        }
        const file = fileAt(path, `external data named by ${onnx}`);
        await checkFreeSpace(ctx, [file]);
        pulled.push(await obtain(ctx, file));
        have.add(path);
      }
      if (config !== undefined) {
        pulled.push(await writeMetadata(ctx, config, onnx, provenance, source.alias));
      }
    }

    // The directory must load as the engine will load it, or the old one stays.
    readModelDirectory(staging);
    return await finish(
      ctx,
      old,
      {
        kind: "prompt",
        name,
        repo,
        revision: commit,
        dir: target,
        files: pulled,
        license,
        ...(convertedFrom !== undefined ? { convertedFrom } : {}),
      },
      revision,
    );
  } finally {
    await release();
  }
}

/** Writes the manifest and swaps the staging folder in, unless the live one is already this pull. */
async function finish(
  ctx: Context,
  old: string,
  result: PullResult,
  revision: string,
): Promise<PullResult> {
  const { staging, target, repo, commit } = ctx;
  const { files: pulled, license, convertedFrom } = result;
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
      `${JSON.stringify({ repo, revision: commit, requestedRevision: revision, complete: true, license, ...(convertedFrom !== undefined ? { convertedFrom } : {}), files: pulled }, null, 2)}\n`,
    ),
  );
  await swapInto(staging, target, old);
  return result;
}

/**
 * The Stable Diffusion layout's files, each verified against the listing like a prompt model's,
 * then the external data every graph names (optimum's model.onnx_data, Olive's model.onnx.data,
 * or one file per tensor), found in the downloaded graph itself.
 */
async function stableDiffusionFiles(
  ctx: Context,
  listing: Map<string, HubFile>,
  fileAt: (path: string, why: string) => HubFile,
): Promise<PulledFile[]> {
  const wanted = [
    ...SD_REQUIRED.map((path) => fileAt(path, "needed by the local Stable Diffusion backend")),
    ...SD_OPTIONAL.flatMap((path) => listing.get(path) ?? []),
  ];
  if (!listing.has("tokenizer/tokenizer.json") && !listing.has("tokenizer/vocab.json")) {
    fileAt(
      "tokenizer/vocab.json",
      "CLIP's tokenizer: neither tokenizer.json nor vocab.json is there",
    );
  }
  const graphs = SD_REQUIRED.filter((path) => path.endsWith(".onnx"));
  const sidecars = graphs.flatMap((graph) => externalData(listing, graph));
  await checkFreeSpace(ctx, [...wanted, ...sidecars]);
  const pulled: PulledFile[] = [];
  for (const file of [...wanted, ...sidecars]) pulled.push(await obtain(ctx, file));
  const have = new Set(pulled.map((file) => file.path));
  for (const graph of graphs) {
    for (const location of await externalDataLocations(join(ctx.staging, graph))) {
      const path = posix.normalize(posix.join(posix.dirname(graph), location));
      if (have.has(path)) continue;
      if (!safePath(path)) {
        throw new UserError(
          "MODEL_DIR_INVALID",
          `${ctx.repo}/${graph} names external data outside the repository (${location}).`,
        );
      }
      const file = fileAt(path, `external data named by ${graph}`);
      await checkFreeSpace(ctx, [file]);
      pulled.push(await obtain(ctx, file));
      have.add(path);
    }
  }
  return pulled;
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

/** Where unmerging puts the weights a merged decoder stored inside its graph (external data). */
export function unmergedDataPath(onnx: string): string {
  return `${onnx}.unmerged.data`;
}

/**
 * The ONNX decoder: obtained like any file, then unmerged when it is a merged decoder (the graph,
 * and its weights in unmergedDataPath when they were inside it). A converted copy already made
 * from this very Hub file (in the staging folder by an interrupted run, or live by an earlier
 * pull) is reused when every converted file's hash still matches its record.
 */
async function obtainDecoder(ctx: Context, file: HubFile): Promise<PulledFile[]> {
  for (const folder of [ctx.staging, ctx.target]) {
    const records = unmergedRecords(ctx, folder, file);
    if (!records.some((record) => record.path === file.path)) continue;
    if (!(await allVerified(folder, records))) continue;
    const fromLive = folder === ctx.target;
    const reused: PulledFile[] = [];
    for (const record of records) {
      const staged = join(ctx.staging, record.path);
      const live = join(ctx.target, record.path);
      if (fromLive) await linkOrCopy(live, staged);
      reused.push(emitDone(ctx, { ...record, skipped: fromLive || sameInode(staged, live) }));
    }
    return reused;
  }
  const original = await obtain(ctx, file);
  return unmergeStaged(ctx, file, original);
}

async function allVerified(folder: string, records: Omit<PulledFile, "skipped">[]) {
  for (const record of records) {
    const path = join(folder, record.path);
    if (!existsSync(path) || (await sizeOf(path)) !== record.bytes) return false;
    const hashes = await hashFile(path);
    if (hashes.bytes !== record.bytes || hashes.sha256 !== record.sha256) return false;
  }
  return true;
}

/** Unmerges the staged, verified decoder in place; a plain decoder is left as it is. */
async function unmergeStaged(
  ctx: Context,
  file: HubFile,
  original: PulledFile,
): Promise<PulledFile[]> {
  const staged = join(ctx.staging, file.path);
  const converting = `${staged}.unmerging`;
  const dataPath = unmergedDataPath(file.path);
  const dataStaged = join(ctx.staging, dataPath);
  // Graph and weights together are about as large as the merged file (external data it already
  // had is shared, not copied).
  await checkFreeSpace(ctx, [{ path: `${file.path}.unmerging`, size: file.size }]);
  let converted: boolean;
  ctx.options.onFile?.({ kind: "unmerge", path: file.path });
  try {
    converted = unmergeOnnxDecoder(staged, converting, { externalData: posix.basename(dataPath) });
  } catch (error) {
    await rm(converting, { force: true });
    await rm(dataStaged, { force: true });
    if ((error as NodeJS.ErrnoException).code) throw diskError(converting, error);
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${ctx.repo}/${file.path} could not be read as an ONNX decoder: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!converted) return [original];
  const unmergedFrom = { bytes: original.bytes, sha256: original.sha256 };
  const records: Omit<PulledFile, "skipped">[] = [];
  for (const [path, onDisk] of [
    [file.path, converting],
    [dataPath, dataStaged],
  ] as const) {
    if (onDisk === dataStaged && (await sizeOf(dataStaged)) === 0) {
      await rm(dataStaged, { force: true }); // every weight was external already
      continue;
    }
    const hashes = await hashFile(onDisk);
    records.push({ path, bytes: hashes.bytes, sha256: hashes.sha256, unmergedFrom });
  }
  // Recorded before the graph's rename: a run cut in between finds the original, verified, and
  // converts it again; one cut after it finds the converted files and their records.
  await recordUnmerged(ctx.staging, records);
  await diskCall(staged, () => rename(converting, staged));
  return records.map((record) => emitDone(ctx, { ...record, skipped: false }));
}

function emitDone(ctx: Context, file: PulledFile): PulledFile {
  ctx.options.onFile?.({ kind: "done", file });
  return file;
}

/**
 * A folder's manifest records of the files unmerged from this very Hub file (the decoder, and its
 * weights file when there is one): the same repository, and the same SHA-256 (or, for a file the
 * Hub lists without one, the same commit).
 */
function unmergedRecords(
  ctx: Context,
  folder: string,
  file: HubFile,
): Omit<PulledFile, "skipped">[] {
  const manifest = tryReadJson(join(folder, MANIFEST_FILE)) as
    | { repo?: unknown; revision?: unknown; files?: unknown; unmerged?: unknown }
    | undefined;
  if (manifest?.repo !== ctx.repo) return [];
  if (!file.sha256 && manifest.revision !== ctx.commit) return [];
  const candidates = [
    ...(Array.isArray(manifest?.files) ? manifest.files : []),
    ...(Array.isArray(manifest?.unmerged) ? manifest.unmerged : []),
  ] as Partial<PulledFile>[];
  const records: Omit<PulledFile, "skipped">[] = [];
  for (const path of [file.path, unmergedDataPath(file.path)]) {
    const record = candidates.find((entry) => entry?.path === path && entry.unmergedFrom);
    const from = record?.unmergedFrom;
    if (
      !record ||
      typeof record.bytes !== "number" ||
      typeof record.sha256 !== "string" ||
      typeof from?.bytes !== "number" ||
      typeof from.sha256 !== "string" ||
      mismatch(file, { bytes: from.bytes, sha256: from.sha256 })
    ) {
      continue;
    }
    records.push({
      path,
      bytes: record.bytes,
      sha256: record.sha256,
      unmergedFrom: { bytes: from.bytes, sha256: from.sha256 },
    });
  }
  return records;
}

/** Adds conversions to the staging folder's manifest (complete: false until the pull ends). */
async function recordUnmerged(
  staging: string,
  records: Omit<PulledFile, "skipped">[],
): Promise<void> {
  const path = join(staging, MANIFEST_FILE);
  const state = (tryReadJson(path) ?? {}) as { unmerged?: unknown };
  const earlier = (Array.isArray(state.unmerged) ? state.unmerged : []) as PulledFile[];
  const paths = new Set(records.map((record) => record.path));
  const unmerged = [...earlier.filter((entry) => !paths.has(entry?.path)), ...records];
  await diskCall(path, () => writeFile(path, `${JSON.stringify({ ...state, unmerged })}\n`));
}

/** imagine-model.json from config.json; an existing one for the same commit is kept (edits too). */
async function writeMetadata(
  ctx: Context,
  config: unknown,
  onnx: string,
  provenance: { baseModel: string; revision: string; pulledAt: string; [key: string]: unknown },
  alias: ModelAlias | undefined,
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
      tags: alias?.tags ?? null,
      maxNewTokens: alias?.maxNewTokens,
    });
    await diskCall(staged, () => writeFile(staged, `${JSON.stringify(metadata, null, 2)}\n`));
  }
  const hashes = await hashFile(staged);
  const file = { path: METADATA_FILE, bytes: hashes.bytes, sha256: hashes.sha256, skipped };
  ctx.options.onFile?.({ kind: "done", file });
  return file;
}

const run = promisify(execFile);
const EXPORT_SCRIPT = join(PACKAGE_ROOT, "training", "export_onnx.py");

/**
 * A repository with only PyTorch weights: the weights are fetched like any file (resumable,
 * verified), converted by training/export_onnx.py into the staging folder, and dropped unless
 * keepWeights. A pull of a commit already converted here reuses the live ONNX.
 */
async function convertWeights(
  ctx: Context,
  weights: HubFile,
  provenance: Record<string, unknown>,
  alias: ModelAlias | undefined,
): Promise<PulledFile[]> {
  const files: PulledFile[] = [];
  const keep = ctx.options.keepWeights === true;
  const reuse = ctx.options.meanCaptionTokens === undefined && convertedBefore(ctx);
  const python = ctx.options.converter?.python ?? defaultPython();
  const env = ctx.options.converter?.env ?? process.env;
  if (!reuse) {
    await checkTorch(python, env, ctx.repo, weights.path);
    // The ONNX is about as large as the weights it is made from.
    await checkFreeSpace(ctx, [weights, { ...weights, path: CONVERTED_ONNX }]);
  }
  if (keep || !reuse) {
    const obtained = await obtain(ctx, weights);
    if (keep) files.push(obtained);
  }
  if (reuse) {
    // Over 2 GB the exporter writes the weights as external data beside model.onnx.
    const external = await externalDataLocations(join(ctx.target, CONVERTED_ONNX));
    for (const path of [CONVERTED_ONNX, ...external, METADATA_FILE]) {
      files.push(await reuseLive(ctx, path));
    }
    return files;
  }

  ctx.options.onFile?.({ kind: "convert", from: weights.path });
  const meanCaptionTokens = ctx.options.meanCaptionTokens ?? DEFAULT_MEAN_CAPTION_TOKENS;
  const args = [
    EXPORT_SCRIPT,
    ...["--checkpoint", ctx.staging, "--out", ctx.staging, "--no-golden"],
    ...["--mean-caption-tokens", String(meanCaptionTokens)],
    ...(alias?.tags ? ["--tags", `${alias.tags.start},${alias.tags.end}`] : ["--no-tags"]),
    ...(alias?.maxNewTokens !== undefined ? ["--max-new-tokens", String(alias.maxNewTokens)] : []),
  ];
  try {
    await run(python, args, { env, signal: ctx.options.signal, maxBuffer: 1 << 24 });
  } catch (error) {
    if (ctx.options.signal?.aborted) throw error;
    const detail = lastLines((error as { stderr?: string }).stderr, 3) || (error as Error).message;
    throw new UserError(
      "MODEL_INCONSISTENT",
      `Converting ${ctx.repo}/${weights.path} to ONNX with training/export_onnx.py failed: ${detail}`,
    );
  }
  if (!keep) await rm(join(ctx.staging, weights.path), { force: true });

  // export_onnx.py names the checkpoint folder as the base model; say where it really came from.
  const metadataPath = join(ctx.staging, METADATA_FILE);
  const exported = readJson(metadataPath, `${METADATA_FILE} written by export_onnx.py`) as {
    provenance?: Record<string, unknown>;
  };
  const metadata = {
    ...exported,
    provenance: {
      ...exported.provenance,
      ...provenance,
      convertedFrom: weights.path,
      converter: "training/export_onnx.py",
      metadata: `written by imagine-bot models pull; meanCaptionTokens ${ctx.options.meanCaptionTokens === undefined ? "is the default estimate" : "was given"}`,
    },
  };
  await diskCall(metadataPath, () =>
    writeFile(metadataPath, `${JSON.stringify(metadata, null, 2)}\n`),
  );
  const external = await externalDataLocations(join(ctx.staging, CONVERTED_ONNX));
  for (const path of [CONVERTED_ONNX, ...external, METADATA_FILE]) {
    if (!safePath(path) || !existsSync(join(ctx.staging, path))) {
      throw new UserError(
        "MODEL_INCONSISTENT",
        `training/export_onnx.py wrote ${CONVERTED_ONNX} naming external data ${path}, which is not in ${ctx.staging}.`,
      );
    }
    const hashes = await hashFile(join(ctx.staging, path));
    const file = { path, bytes: hashes.bytes, sha256: hashes.sha256, skipped: false };
    ctx.options.onFile?.({ kind: "done", file });
    files.push(file);
  }
  return files;
}

/** The live directory holds a conversion of this very commit. */
function convertedBefore(ctx: Context): boolean {
  const manifest = tryReadJson(join(ctx.target, MANIFEST_FILE)) as
    | { repo?: unknown; revision?: unknown; convertedFrom?: unknown }
    | undefined;
  return (
    manifest?.repo === ctx.repo &&
    manifest?.revision === ctx.commit &&
    typeof manifest?.convertedFrom === "string" &&
    existsSync(join(ctx.target, CONVERTED_ONNX)) &&
    existsSync(join(ctx.target, METADATA_FILE))
  );
}

async function reuseLive(ctx: Context, path: string): Promise<PulledFile> {
  const staged = join(ctx.staging, path);
  if (!sameInode(staged, join(ctx.target, path))) await linkOrCopy(join(ctx.target, path), staged);
  const hashes = await hashFile(staged);
  const file = { path, bytes: hashes.bytes, sha256: hashes.sha256, skipped: true };
  ctx.options.onFile?.({ kind: "done", file });
  return file;
}

/** Fails in a second, before any weights are fetched, when the converter cannot run. */
async function checkTorch(
  python: string,
  env: NodeJS.ProcessEnv,
  repo: string,
  weights: string,
): Promise<void> {
  try {
    await run(python, ["-c", "import numpy, torch"], { env, timeout: 120_000 });
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    const why =
      failure.code === "ENOENT"
        ? `there is no Python at ${python}`
        : `${python} cannot import torch (${lastLines(failure.stderr, 1) || failure.message})`;
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${repo} publishes PyTorch weights (${weights}) but no ONNX export, so models pull converts them with training/export_onnx.py, and ${why}. ` +
        "Install PyTorch (Debian: sudo apt-get install python3-torch python3-numpy) or set IMAGINE_PYTHON to a Python that has it, then pull again; nothing was downloaded.",
    );
  }
}

function lastLines(text: string | undefined, count: number): string {
  return (text ?? "").trim().split("\n").slice(-count).join(" ").trim();
}

/** The key of an ONNX StringStringEntryProto ("location") as protobuf bytes, with the value's tag. */
const LOCATION_ENTRY = Buffer.from([0x0a, 0x08, ...Buffer.from("location"), 0x12]);
const MAX_LOCATION = 1024;

/**
 * The external-data file names an ONNX graph refers to: each TensorProto.external_data entry is a
 * StringStringEntryProto {key = 1, value = 2}, so "location" is stored as 0x0a 0x08 "location"
 * 0x12 <varint length> <name>. Scanned in a stream with an overlap, so a 2 GB graph is never
 * held in memory.
 */
export async function externalDataLocations(path: string): Promise<string[]> {
  const found = new Set<string>();
  let carry = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buffer = carry.length > 0 ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    let from = 0;
    let consumedUpTo = 0;
    for (;;) {
      const at = buffer.indexOf(LOCATION_ENTRY, from);
      if (at < 0) break;
      let cursor = at + LOCATION_ENTRY.length;
      let length = 0;
      let shift = 0;
      let complete = false;
      while (cursor < buffer.length && shift < 35) {
        const byte = buffer[cursor++] as number;
        length |= (byte & 0x7f) << shift;
        shift += 7;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || cursor + length > buffer.length) break; // finish with the next chunk
      if (length > 0 && length <= MAX_LOCATION) {
        found.add(buffer.subarray(cursor, cursor + length).toString("utf8"));
      }
      from = cursor + length;
      consumedUpTo = from;
    }
    // Keep enough of the tail for an entry cut by the chunk boundary.
    const keepFrom = Math.max(
      consumedUpTo,
      buffer.length - (LOCATION_ENTRY.length + 5 + MAX_LOCATION),
    );
    carry = Buffer.from(buffer.subarray(keepFrom));
  }
  return [...found];
}

function findLayout(listing: Map<string, HubFile>): string | undefined {
  return ONNX_LAYOUTS.find((path) => listing.has(path));
}

function firstLayout(listing: Map<string, HubFile>, repo: string): string {
  const found = findLayout(listing);
  if (found) return found;
  const onnxFiles = [...listing.keys()].filter((path) => path.endsWith(".onnx"));
  throw new UserError(
    "MODEL_DIR_INVALID",
    `${repo} has no ONNX GPT-2 decoder in a known layout (looked for ${ONNX_LAYOUTS.join(", ")})` +
      (onnxFiles.length > 0
        ? `; it has ${onnxFiles.slice(0, 8).join(", ")}. Publish an imagine-model.json whose "onnx" names the KV-cache decoder.`
        : `; it has no .onnx file and no PyTorch weights (${WEIGHT_FILES.join(", ")}) to convert either.`),
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
