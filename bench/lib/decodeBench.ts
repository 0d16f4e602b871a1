/**
 * Pieces bench/prompt.ts, bench/peer.ts and bench/decode-compare.ts share: the cached random-weight
 * exports, the read bandwidth measured beside the decode timings, onnxruntime profiles, a median.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { Worker } from "node:worker_threads";
import type { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { encodeText } from "../../src/core/prompt/tokenizer.js";

/** The decode workload both engines' benches run: one subject, then new tokens at each batch size. */
export const SUBJECT = "a lighthouse at dusk"; // 4 GPT-2 tokens
export const NEW_TOKENS = 24;
export const BATCHES = [1, 5] as const;

export const ROOT = resolve(import.meta.dirname, "..", "..");

/** A cached export is reused until the exporter (training/export_onnx.py, gpt2.py) changes. */
export function upToDate(dir: string): boolean {
  const made = join(dir, "imagine-model.json");
  if (!existsSync(made)) return false;
  const exporter = ["export_onnx.py", "gpt2.py"].map(
    (f) => statSync(join(ROOT, "training", f)).mtimeMs,
  );
  return statSync(made).mtimeMs > Math.max(...exporter);
}

/** Runs training/export_onnx.py ARGS --out DIR unless DIR is up to date; quiet keeps stdout clean. */
export function exportModel(args: string[], dir: string, quiet: boolean): void {
  if (upToDate(dir)) return;
  if (!quiet) console.log(`writing ${dir} (once per exporter version)…`);
  execFileSync(
    "/usr/bin/python3",
    [join(ROOT, "training", "export_onnx.py"), ...args, "--out", dir],
    // With --json, stdout carries only the JSON line.
    { stdio: ["ignore", quiet ? "ignore" : "inherit", "inherit"] },
  );
}

/** GPT-2 `preset` with random weights (seed 0), exported once into .cache/bench. */
export function randomPreset(preset: string, extra: string[], suffix: string, quiet: boolean) {
  const dir = join(ROOT, ".cache", "bench", `${preset}-random${suffix}`);
  exportModel(
    ["--random", preset, "--seed", "0", "--no-golden", "--mean-caption-tokens", "24", ...extra],
    dir,
    quiet,
  );
  return dir;
}

/**
 * Steps/s of `batch` rows decoding NEW_TOKENS one token at a time after SUBJECT, as the engine
 * decodes: the prefix once at batch 1, its cache repeated per row (only the steps are timed).
 */
export async function timeDecode(decoder: Gpt2OnnxDecoder, batch: number): Promise<number> {
  const first = await decoder.step([encodeText(SUBJECT)], decoder.emptyCache(1));
  let cache = decoder.selectRows(
    first.cache,
    Array.from({ length: batch }, () => 0),
  );
  const start = performance.now();
  for (let i = 0; i < NEW_TOKENS; i++) {
    const rows = Array.from({ length: batch }, (_, row) => [(i * 31 + row * 7) % 50000]);
    cache = (await decoder.step(rows, cache)).cache;
  }
  return NEW_TOKENS / ((performance.now() - start) / 1000);
}

/** Read bandwidth with both cores busy: workers memcmp two equal 128 MiB buffers (reads only). */
export async function measureReadBandwidth(workers: number): Promise<number> {
  const source = `
    const { parentPort } = require("node:worker_threads");
    const size = 128 * 1024 * 1024;
    const a = Buffer.alloc(size, 7), b = Buffer.alloc(size, 7);
    a.compare(b); // fault the pages in
    const start = process.hrtime.bigint();
    let bytes = 0;
    for (let i = 0; i < 4; i++) { if (a.compare(b) !== 0) throw new Error("unequal"); bytes += 2 * size; }
    parentPort.postMessage({ bytes, seconds: Number(process.hrtime.bigint() - start) / 1e9 });`;
  const results = await Promise.all(
    Array.from(
      { length: workers },
      () =>
        new Promise<{ bytes: number; seconds: number }>((done, failed) => {
          const worker = new Worker(source, { eval: true });
          worker.once("message", (m) => {
            done(m);
            void worker.terminate();
          });
          worker.once("error", failed);
        }),
    ),
  );
  return results.reduce((sum, r) => sum + r.bytes / r.seconds, 0);
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** What onnxruntime's profile (written into `folder`) says of the runs it timed, per run. */
export interface OnnxProfileSummary {
  /** Wall time of one `model_run`, in ms. */
  runMs: number;
  /** Kernel time by operator type, in ms, the largest first. */
  ops: [string, number][];
  /** Kernel time of the nodes whose name includes `lm_head` (the exporters name the head's node
   * after the module, /model/lm_head/…), in ms. */
  lmHeadMs: number;
}

export function readOnnxProfile(folder: string): OnnxProfileSummary {
  const file = readdirSync(folder).find((name) => name.endsWith(".json"));
  if (!file) throw new Error("onnxruntime wrote no profile");
  const events = JSON.parse(readFileSync(join(folder, file), "utf8")) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  const byOp = new Map<string, number>();
  let lmHeadMs = 0;
  for (const e of events) {
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const op = e.args?.op_name ?? "?";
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur / 1000 / runs.length);
    if (e.name.includes("lm_head")) lmHeadMs += e.dur / 1000 / runs.length;
  }
  return {
    runMs: runs.reduce((sum, e) => sum + e.dur, 0) / 1000 / runs.length,
    ops: [...byOp].sort((a, b) => b[1] - a[1]),
    lmHeadMs,
  };
}
