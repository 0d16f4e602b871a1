/**
 * The CPU-bound half of `data prepare`: clean → explicit filter → GPT-2 tokens, one batch of
 * captions at a time. `processBatch` runs inline (`--workers 1`) or inside a worker_thread; this
 * file is also the worker's entry point (started by prepare.ts with workerData.kind set).
 *
 * Results come back as a few flat typed arrays (transferred, not copied) so a batch of 2,000
 * captions is one small message each way.
 */
import { parentPort, workerData } from "node:worker_threads";
import { clearMergeCache } from "gpt-tokenizer/encoding/r50k_base";
import { encodeText } from "../prompt/tokenizer.js";
import { cleanCaption } from "./clean.js";

/**
 * The explicit-text filter as src/core/safety exports it (structurally: only `check` is used).
 * Declared here so the data pipeline does not depend on one implementation of the list.
 */
export interface CaptionTextFilter {
  check(text: string): { blocked: boolean };
}

/**
 * Where a worker gets its filter: a module (file URL) and a factory exported by it, called with
 * structured-clonable options. Functions cannot cross threads, descriptions can.
 *
 * @example
 * { module: new URL("../safety/index.js", import.meta.url).href,
 *   export: "loadExplicitFilter", options: config.safety }
 */
export interface FilterSource {
  module: string;
  export: string;
  options?: unknown;
}

export const REASON_KEPT = 0;
export const REASON_EMPTY = 1;
export const REASON_EXPLICIT = 2;

export interface BatchJob {
  texts: string[];
  /** Return the cleaned captions that were kept (prepare writes them to train.txt/eval.txt). */
  wantText: boolean;
  /** Return the token ids (prepare), or only the lengths (lengths). */
  wantIds: boolean;
}

export interface BatchResult {
  /** Per input text: REASON_KEPT, REASON_EMPTY or REASON_EXPLICIT. */
  reasons: Uint8Array<ArrayBuffer>;
  /** Kept captions only, cleaned, in order (empty when wantText is false). */
  cleaned: string[];
  /** Kept captions only: GPT-2 token count of each cleaned caption. */
  lengths: Uint32Array<ArrayBuffer>;
  /** Kept captions only: their token ids back to back (empty when wantIds is false). */
  ids: Uint16Array<ArrayBuffer>;
}

export async function loadFilter(source: FilterSource | null): Promise<CaptionTextFilter | null> {
  if (source === null) return null;
  const module = (await import(source.module)) as Record<string, unknown>;
  const factory = module[source.export];
  if (typeof factory !== "function") {
    throw new Error(`${source.module} does not export a function ${source.export}`);
  }
  const filter = (factory as (options?: unknown) => unknown)(source.options);
  if (
    filter === null ||
    typeof filter !== "object" ||
    typeof (filter as CaptionTextFilter).check !== "function"
  ) {
    throw new Error(`${source.export}() from ${source.module} did not return a text filter`);
  }
  return filter as CaptionTextFilter;
}

/**
 * gpt-tokenizer caches the merges of words outside the vocabulary (100,000 entries) and, once
 * full, evicts the oldest entry of a Map for every insert, which V8 makes slower and slower:
 * in bench/data.ts --generated, throughput fell 3-4× once it was full. Clearing it every 40,000
 * captions keeps it under its cap for caption-like text and costs little: words in the
 * vocabulary never use it.
 */
const CLEAR_MERGE_CACHE_EVERY = 40_000;
let sinceClear = 0;

export function processBatch(job: BatchJob, filter: CaptionTextFilter | null): BatchResult {
  sinceClear += job.texts.length;
  if (sinceClear >= CLEAR_MERGE_CACHE_EVERY) {
    clearMergeCache();
    sinceClear = 0;
  }
  const reasons = new Uint8Array(job.texts.length);
  const cleaned: string[] = [];
  const lengths: number[] = [];
  const idChunks: number[][] = [];
  let totalIds = 0;
  for (let i = 0; i < job.texts.length; i++) {
    const caption = cleanCaption(job.texts[i] as string);
    if (caption === "") {
      reasons[i] = REASON_EMPTY;
      continue;
    }
    if (filter?.check(caption).blocked) {
      reasons[i] = REASON_EXPLICIT;
      continue;
    }
    const ids = encodeText(caption);
    lengths.push(ids.length);
    if (job.wantIds) {
      idChunks.push(ids);
      totalIds += ids.length;
    }
    if (job.wantText) cleaned.push(caption);
  }
  const ids = new Uint16Array(totalIds);
  let offset = 0;
  for (const chunk of idChunks) {
    ids.set(chunk, offset);
    offset += chunk.length;
  }
  return { reasons, cleaned, lengths: Uint32Array.from(lengths), ids };
}

/** Messages between prepare.ts and a worker. */
export type WorkerRequest = { id: number; job: BatchJob };
export type WorkerResponse =
  | { kind: "ready" }
  | { kind: "failed"; message: string }
  | { id: number; result: BatchResult }
  | { id: number; error: string };

export const WORKER_KIND = "imagine-bot/prepare-worker";

async function serve(): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  let filter: CaptionTextFilter | null;
  try {
    filter = await loadFilter((workerData as { filter: FilterSource | null }).filter);
  } catch (error) {
    port.postMessage({
      kind: "failed",
      message: error instanceof Error ? error.message : String(error),
    } satisfies WorkerResponse);
    return;
  }
  port.on("message", (request: WorkerRequest) => {
    try {
      const result = processBatch(request.job, filter);
      port.postMessage({ id: request.id, result } satisfies WorkerResponse, [
        result.reasons.buffer,
        result.lengths.buffer,
        result.ids.buffer,
      ]);
    } catch (error) {
      port.postMessage({
        id: request.id,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      } satisfies WorkerResponse);
    }
  });
  port.postMessage({ kind: "ready" } satisfies WorkerResponse);
}

if ((workerData as { kind?: string } | null)?.kind === WORKER_KIND) await serve();
