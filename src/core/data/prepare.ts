/**
 * `data prepare`: LAION-style caption files → train/eval token files for training/.
 *
 *   read (in order, across files) → clean → drop explicit → tag → first N → split → tokenize
 *
 * It streams: the reader feeds ordered batches (2,000 captions) to worker threads that clean,
 * filter and tokenize; at most a few batches per worker are in flight, so memory is the same for
 * 10k or 10M captions. Results are consumed in batch order, so the output is identical for any
 * number of workers, and the train/eval draw depends only on the seed and the kept caption's
 * index. Outputs in --out: train.tokens, eval.tokens (src/core/data/tokenFile.ts), train.txt,
 * eval.txt (the cleaned captions, one per line, no tags) and report.json, swapped in whole once
 * complete (src/core/atomicDir.ts).
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { writeFolderAtomically } from "../atomicDir.js";
import { BotError } from "../errors.js";
import { encodeTag } from "../prompt/tokenizer.js";
import type * as safetyModule from "../safety/index.js";
import type { FilterOptions } from "../safety/index.js";
import {
  type BatchJob,
  type BatchResult,
  type FilterSource,
  loadFilter,
  processBatch,
  REASON_EMPTY,
  REASON_EXPLICIT,
  WORKER_KIND,
  type WorkerResponse,
} from "./prepareWorker.js";
import type { Progress } from "./progress.js";
import {
  type CaptionFormat,
  type CaptionRecord,
  type CaptionSource,
  openCaptionSource,
} from "./readers.js";
import { TokenFileWriter } from "./tokenFile.js";

export type { FilterSource } from "./prepareWorker.js";

export const DEFAULT_BATCH_SIZE = 2000;
/** How many malformed rows are listed (with file and row) in the report. */
const MALFORMED_EXAMPLES = 10;

/** This module's own extension: .ts under tsx/vitest, .js in dist/. */
const OWN_EXTENSION = import.meta.url.endsWith(".ts") ? ".ts" : ".js";

/**
 * The real explicit-text filter (src/core/safety's loadExplicitFilter with the configured
 * changes), described so that each worker thread can load it.
 */
export function explicitFilterSource(safety: FilterOptions): FilterSource {
  const options: FilterOptions = {};
  if (safety.extraBlockedWords) options.extraBlockedWords = [...safety.extraBlockedWords];
  if (safety.allowedWords) options.allowedWords = [...safety.allowedWords];
  return {
    module: new URL(`../safety/index${OWN_EXTENSION}`, import.meta.url).href,
    export: "loadExplicitFilter" satisfies keyof typeof safetyModule,
    options,
  };
}

// ---------------------------------------------------------------------------------------------
// Batch processors: inline or a pool of worker threads, same interface.

interface BatchProcessor {
  run(job: BatchJob): Promise<BatchResult>;
  close(): Promise<void>;
  readonly workers: number;
}

async function inlineProcessor(filter: FilterSource | null): Promise<BatchProcessor> {
  let loaded: Awaited<ReturnType<typeof loadFilter>>;
  try {
    loaded = await loadFilter(filter);
  } catch (error) {
    throw filterError(error);
  }
  return {
    workers: 1,
    run: async (job) => processBatch(job, loaded),
    close: async () => {},
  };
}

function filterError(error: unknown): BotError {
  const message = error instanceof Error ? error.message : String(error);
  return new BotError("USAGE", `cannot load the explicit-text filter: ${message}`, {
    cause: error,
  });
}

/**
 * How to start a worker. From dist/ it is prepareWorker.js itself. From TypeScript sources
 * (tsx, vitest) a worker does not inherit the parent's loader, so a small bootstrap registers
 * tsx's ESM loader in the worker first and then imports prepareWorker.ts.
 */
function workerEntry(): { script: URL | string; eval: boolean } {
  const url = new URL(`./prepareWorker${OWN_EXTENSION}`, import.meta.url);
  if (OWN_EXTENSION === ".js") return { script: url, eval: false };
  const tsxPackage = createRequire(import.meta.url).resolve("tsx/package.json");
  const tsxApi = pathToFileURL(join(dirname(tsxPackage), "dist", "esm", "api", "index.mjs")).href;
  const code =
    `import(${JSON.stringify(tsxApi)})` +
    `.then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return { script: code, eval: true };
}

interface Task {
  job: BatchJob;
  resolve: (result: BatchResult) => void;
  reject: (error: Error) => void;
}

async function workerPool(size: number, filter: FilterSource | null): Promise<BatchProcessor> {
  const entry = workerEntry();
  const queue: Task[] = [];
  const slots: { worker: Worker; task: Task | undefined }[] = [];
  let failure: Error | undefined;
  let nextId = 0;

  const fail = (error: Error) => {
    failure ??= error;
    for (const slot of slots) {
      slot.task?.reject(error);
      slot.task = undefined;
    }
    for (const task of queue.splice(0)) task.reject(error);
  };
  const pump = () => {
    for (const slot of slots) {
      if (slot.task !== undefined) continue;
      const task = queue.shift();
      if (task === undefined) return;
      slot.task = task;
      slot.worker.postMessage({ id: nextId++, job: task.job });
    }
  };

  const started = Array.from({ length: size }, () => {
    const worker = new Worker(entry.script, {
      eval: entry.eval,
      workerData: { kind: WORKER_KIND, filter },
    });
    const slot: { worker: Worker; task: Task | undefined } = { worker, task: undefined };
    slots.push(slot);
    return new Promise<void>((resolve, reject) => {
      worker.on("message", (message: WorkerResponse) => {
        if ("kind" in message) {
          if (message.kind === "ready") resolve();
          else reject(filterError(new Error(message.message)));
          return;
        }
        const task = slot.task;
        slot.task = undefined;
        if ("error" in message) task?.reject(new Error(`prepare worker failed: ${message.error}`));
        else task?.resolve(message.result);
        pump();
      });
      worker.on("error", (error) => {
        reject(error);
        fail(error);
      });
      worker.on("exit", (code) => {
        const error = new Error(`prepare worker exited early (code ${code})`);
        reject(error);
        fail(error);
      });
    });
  });
  try {
    await Promise.all(started);
  } catch (error) {
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
    throw error;
  }
  return {
    workers: size,
    run(job) {
      if (failure) return Promise.reject(failure);
      return new Promise<BatchResult>((resolve, reject) => {
        queue.push({ job, resolve, reject });
        pump();
      });
    },
    async close() {
      for (const slot of slots) slot.worker.removeAllListeners("exit");
      await Promise.all(slots.map((slot) => slot.worker.terminate()));
    },
  };
}

export async function createBatchProcessor(
  workers: number,
  filter: FilterSource | null,
): Promise<BatchProcessor> {
  return workers <= 1 ? inlineProcessor(filter) : workerPool(workers, filter);
}

// ---------------------------------------------------------------------------------------------
// The ordered, bounded batch pipeline shared by prepare and lengths.

export interface Batch {
  /** Index into the inputs. */
  input: number;
  records: CaptionRecord[];
}

export interface PipelineOptions {
  inputs: string[];
  format?: CaptionFormat;
  column?: string;
  workers: number;
  filter: FilterSource | null;
  wantText: boolean;
  wantIds: boolean;
  batchSize?: number;
  progress?: Progress;
  /** Share of the work done judged from the consumer's side (e.g. kept / limit). */
  consumerFraction?: () => number;
}

/** Opens every input first, so a missing column in the last file fails before any work. */
export async function openSources(
  inputs: string[],
  options: { format?: CaptionFormat; column?: string },
): Promise<CaptionSource[]> {
  const sources: CaptionSource[] = [];
  for (const input of inputs) {
    sources.push(
      await openCaptionSource(input, {
        ...(options.format ? { format: options.format } : {}),
        ...(options.column !== undefined ? { column: options.column } : {}),
      }),
    );
  }
  return sources;
}

/**
 * Reads the sources in order, processes batches on `processor` and hands each batch with its
 * result to `consume`, strictly in input order. `consume` returns false to stop early (limit
 * reached); reading stops and results still in flight are discarded.
 */
export async function runPipeline(
  sources: CaptionSource[],
  processor: BatchProcessor,
  options: Pick<
    PipelineOptions,
    "wantText" | "wantIds" | "batchSize" | "progress" | "consumerFraction"
  >,
  consume: (batch: Batch, result: BatchResult) => Promise<boolean> | boolean,
): Promise<void> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const maxInFlight = processor.workers * 2 + 1;
  const inFlight: { batch: Batch; result: Promise<BatchResult> }[] = [];
  const totalBytes = sources.reduce((sum, source) => sum + source.bytes, 0);
  let bytesBefore = 0;
  let rowsRead = 0;
  let stopped = false;

  const dispatch = (batch: Batch) => {
    const texts: string[] = [];
    for (const record of batch.records) if (record.text !== undefined) texts.push(record.text);
    const result = processor.run({ texts, wantText: options.wantText, wantIds: options.wantIds });
    // Handled when awaited below; this keeps an early failure from being "unhandled".
    result.catch(() => {});
    inFlight.push({ batch, result });
  };
  const consumeHead = async () => {
    const head = inFlight.shift();
    if (head === undefined) return;
    const result = await head.result;
    if (!(await consume(head.batch, result))) stopped = true;
  };
  const report = (source: CaptionSource) => {
    if (!options.progress) return;
    const byInput =
      totalBytes > 0 ? (bytesBefore + source.fraction() * source.bytes) / totalBytes : undefined;
    const byConsumer = options.consumerFraction?.();
    const fraction = Math.max(byInput ?? 0, byConsumer ?? 0);
    options.progress.update(rowsRead, fraction > 0 ? fraction : undefined);
  };

  outer: for (let s = 0; s < sources.length; s++) {
    const source = sources[s] as CaptionSource;
    let batch: Batch = { input: s, records: [] };
    for await (const record of source.records) {
      batch.records.push(record);
      rowsRead += 1;
      if (batch.records.length >= batchSize) {
        dispatch(batch);
        batch = { input: s, records: [] };
        report(source);
        while (inFlight.length >= maxInFlight) {
          await consumeHead();
          if (stopped) break outer;
        }
      }
    }
    if (batch.records.length > 0) dispatch(batch);
    bytesBefore += source.bytes;
  }
  while (inFlight.length > 0 && !stopped) await consumeHead();
  inFlight.length = 0;
}

// ---------------------------------------------------------------------------------------------
// prepare

export interface PrepareOptions {
  inputs: string[];
  outDir: string;
  /** Column (CSV/TSV/parquet) or field (JSONL); default TEXT, then caption. */
  column?: string;
  /** Format for every input; default from each file's extension. */
  format?: CaptionFormat;
  tags: { start: string; end: string } | null;
  /** Fraction of kept captions held out for evaluation (the paper: 0.1). */
  evalFraction: number;
  seed: number;
  /** Keep the first N captions that survive cleaning and filtering (the paper: 450,000). */
  limit?: number;
  /** The explicit-text filter each worker loads; null keeps explicit captions. */
  filter: FilterSource | null;
  /** Worker threads; 1 runs inline. Default: availableParallelism(). */
  workers?: number;
  batchSize?: number;
  progress?: Progress;
}

export interface SplitReport {
  captions: number;
  tokens: number;
  /** Mean GPT-2 token length of the captions, tags excluded. */
  meanCaptionTokens: number;
}

export interface PrepareReport {
  inputs: { path: string; format: CaptionFormat; column: string | null; rows: number }[];
  outDir: string;
  files: { trainTokens: string; evalTokens: string; trainText: string; evalText: string };
  /** Rows read, up to the row that gave the last kept caption when the limit was reached. */
  read: number;
  kept: number;
  dropped: { empty: number; explicit: number; malformed: number };
  /** The first malformed rows, with their file and row number. */
  malformed: { input: string; row: number; reason: string }[];
  limit: number | null;
  limitReached: boolean;
  evalFraction: number;
  seed: number;
  tags: { start: string; end: string } | null;
  filter: string | null;
  train: SplitReport;
  eval: SplitReport;
  workers: number;
  durationSeconds: number;
  /** Kept captions per second. */
  captionsPerSecond: number;
  rowsPerSecond: number;
}

/**
 * A uniform draw in [0, 1) from (seed, index) alone: the train/eval split of the i-th kept
 * caption does not depend on batches, workers or anything read before it.
 */
export function splitDraw(seed: number, index: number): number {
  const mix = (value: number): number => {
    let z = value >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = mix(seed ^ mix(Math.floor(seed / 2 ** 32) + 0x9e3779b9));
  const hi = Math.floor(index / 2 ** 32);
  return mix(mix((index >>> 0) + s) ^ mix(hi + 0x632be5ab) ^ s) / 2 ** 32;
}

/** The `source` of a token-file header: input names, shortened to fit the header slot. */
function headerSource(inputs: string[]): string {
  const names = [...new Set(inputs.map((input) => basename(input)))];
  const full = names.join(", ");
  if (full.length <= 1000) return full;
  const shown: string[] = [];
  for (const name of names) {
    if ([...shown, name].join(", ").length > 900) break;
    shown.push(name);
  }
  return `${shown.join(", ")} and ${names.length - shown.length} more`;
}

async function writeText(stream: WriteStream, text: string): Promise<void> {
  if (text === "") return;
  if (!stream.write(text)) {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      stream.once("error", onError);
      stream.once("drain", () => {
        stream.off("error", onError);
        resolve();
      });
    });
  }
}

async function closeText(stream: WriteStream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    stream.once("error", reject);
    stream.end(() => resolve());
  });
}

export async function prepareCaptions(options: PrepareOptions): Promise<PrepareReport> {
  const startedAt = performance.now();
  if (!(options.evalFraction >= 0 && options.evalFraction < 1)) {
    throw new BotError("USAGE", `evalFraction must be in [0, 1), got ${options.evalFraction}`);
  }
  const sources = await openSources(options.inputs, options);
  // Written into a staging folder and swapped in whole: an interrupted run leaves the earlier
  // output as it was, never token files that training/ would reject.
  return writeFolderAtomically(options.outDir, PREPARE_OUTPUTS, (staging) =>
    prepareInto(staging, sources, options, startedAt),
  );
}

/** What `data prepare` writes; an --out folder holding anything else is refused. */
const PREPARE_OUTPUTS = ["train.tokens", "eval.tokens", "train.txt", "eval.txt", "report.json"];

async function prepareInto(
  staging: string,
  sources: Awaited<ReturnType<typeof openSources>>,
  options: PrepareOptions,
  startedAt: number,
): Promise<PrepareReport> {
  const files = {
    trainTokens: join(options.outDir, "train.tokens"),
    evalTokens: join(options.outDir, "eval.tokens"),
    trainText: join(options.outDir, "train.txt"),
    evalText: join(options.outDir, "eval.txt"),
  };
  const staged = {
    trainTokens: join(staging, "train.tokens"),
    evalTokens: join(staging, "eval.tokens"),
    trainText: join(staging, "train.txt"),
    evalText: join(staging, "eval.txt"),
  };
  const workers = Math.max(1, options.workers ?? availableParallelism());
  const processor = await createBatchProcessor(workers, options.filter);

  const source = headerSource(options.inputs);
  const tokenWriters = [
    await TokenFileWriter.create(staged.trainTokens, { tags: options.tags, source }),
    await TokenFileWriter.create(staged.evalTokens, { tags: options.tags, source }),
  ] as const;
  const textWriters = [
    createWriteStream(staged.trainText, { encoding: "utf8" }),
    createWriteStream(staged.evalText, { encoding: "utf8" }),
  ] as const;
  const startIds = options.tags ? encodeTag(options.tags.start) : [];
  const endIds = options.tags ? encodeTag(options.tags.end) : [];

  const rowsPerInput = sources.map(() => 0);
  const dropped = { empty: 0, explicit: 0, malformed: 0 };
  const malformed: PrepareReport["malformed"] = [];
  let read = 0;
  let kept = 0;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;

  const consume = async (batch: Batch, result: BatchResult): Promise<boolean> => {
    const inputPath = options.inputs[batch.input] as string;
    const lines = ["", ""];
    let t = 0; // index among the batch's texts
    let k = 0; // index among the batch's kept captions
    let idOffset = 0;
    let more = true;
    for (const record of batch.records) {
      read += 1;
      rowsPerInput[batch.input] = (rowsPerInput[batch.input] ?? 0) + 1;
      if (record.text === undefined) {
        dropped.malformed += 1;
        if (malformed.length < MALFORMED_EXAMPLES) {
          malformed.push({ input: inputPath, row: record.row, reason: record.malformed });
        }
        continue;
      }
      const reason = result.reasons[t++];
      if (reason === REASON_EMPTY) {
        dropped.empty += 1;
        continue;
      }
      if (reason === REASON_EXPLICIT) {
        dropped.explicit += 1;
        continue;
      }
      const length = result.lengths[k] as number;
      const caption = result.cleaned[k] as string;
      k += 1;
      const split = splitDraw(options.seed, kept) < options.evalFraction ? 1 : 0;
      const doc = new Uint16Array(startIds.length + length + endIds.length);
      doc.set(startIds, 0);
      doc.set(result.ids.subarray(idOffset, idOffset + length), startIds.length);
      doc.set(endIds, startIds.length + length);
      idOffset += length;
      await tokenWriters[split].appendDocument(doc, length);
      lines[split] += `${caption}\n`;
      kept += 1;
      if (kept >= limit) {
        more = false;
        break;
      }
    }
    await writeText(textWriters[0], lines[0] as string);
    await writeText(textWriters[1], lines[1] as string);
    return more;
  };

  let headers: Awaited<ReturnType<TokenFileWriter["close"]>>[];
  try {
    await runPipeline(
      sources,
      processor,
      {
        wantText: true,
        wantIds: true,
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
        ...(options.progress ? { progress: options.progress } : {}),
        ...(options.limit ? { consumerFraction: () => kept / limit } : {}),
      },
      consume,
    );
  } finally {
    options.progress?.done();
    await processor.close();
    headers = [await tokenWriters[0].close(), await tokenWriters[1].close()];
    await closeText(textWriters[0]);
    await closeText(textWriters[1]);
  }
  const durationSeconds = (performance.now() - startedAt) / 1000;
  const split = (i: 0 | 1): SplitReport => {
    const header = headers[i] as (typeof headers)[number];
    return {
      captions: header.documents,
      tokens: header.tokens,
      meanCaptionTokens: header.meanCaptionTokens,
    };
  };
  const report: PrepareReport = {
    inputs: sources.map((s, i) => ({
      path: s.path,
      format: s.format,
      column: s.column,
      rows: rowsPerInput[i] ?? 0,
    })),
    outDir: options.outDir,
    files,
    read,
    kept,
    dropped,
    malformed,
    limit: options.limit ?? null,
    limitReached: kept >= limit,
    evalFraction: options.evalFraction,
    seed: options.seed,
    tags: options.tags,
    filter: options.filter
      ? `${options.filter.export} from ${basename(new URL(options.filter.module).pathname)}`
      : null,
    train: split(0),
    eval: split(1),
    workers: processor.workers,
    durationSeconds,
    captionsPerSecond: durationSeconds > 0 ? kept / durationSeconds : 0,
    rowsPerSecond: durationSeconds > 0 ? read / durationSeconds : 0,
  };
  await writeFile(join(staging, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
