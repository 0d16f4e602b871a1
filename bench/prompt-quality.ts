/**
 * Quality of weight-only quantized copies of a model against its float32 original, through
 * onnxruntime-node (the engine that serves them): teacher-forced over real tagged captions, every
 * position's top-1 next token is compared (agreement) and the mean cross-entropy of the caption's
 * actual next token (eval loss) is computed for both.
 *
 * Goals (issue 14): top-1 agreement ≥ 99% for int8 and ≥ 97% for int4; eval loss within 2% of
 * float32. Exits 1 when a goal is missed.
 *
 *   npm run bench:prompt-quality                              # shipped model, int8 and int4
 *   npm run bench:prompt-quality -- --model DIR --quant int4 --captions FILE --count 300
 *   npm run -s bench:prompt-quality -- --json                 # last line: one JSON object
 *   npm run bench:prompt-quality -- --quant-args="--quant-block-size 32"   # exporter flags for the copies
 *
 * Captions: --captions FILE (one a line), else 200 picked with a fixed seed from
 * ../shared/data's Conceptual Captions validation file and written to .cache (never committed).
 * The quantized copies are written under .cache by training/export_onnx.py --from-onnx; the
 * model directory itself is not touched.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Gpt2OnnxDecoder, type KvCache } from "../src/core/prompt/onnxDecoder.js";
import { argmax } from "../src/core/prompt/sampler.js";
import { encodeTaggedCaption, encodeText } from "../src/core/prompt/tokenizer.js";
import { exportModel, ROOT } from "./lib/decodeBench.js";

const { values: flags } = parseArgs({
  options: {
    model: { type: "string", default: join(ROOT, "models", "caption-gpt2-small") },
    quant: { type: "string", default: "int8,int4" },
    captions: { type: "string" },
    data: { type: "string", default: join(ROOT, "..", "shared", "data") },
    count: { type: "string", default: "200" },
    threads: { type: "string", default: "1" },
    // Extra exporter flags for the quantized copies, e.g. "--quant-block-size 64 --no-quant-symmetric".
    "quant-args": { type: "string", default: "" },
    json: { type: "boolean", default: false },
  },
});
const GOALS: Record<string, { agreement: number; lossChange: number }> = {
  int8: { agreement: 0.99, lossChange: 0.02 },
  int4: { agreement: 0.97, lossChange: 0.02 },
};
const log = flags.json ? () => {} : (line: string) => console.log(line);

function fail(message: string): never {
  console.error(`bench:prompt-quality: ${message}`);
  process.exit(2);
}

/** Mulberry32: a small seeded generator, so the caption sample is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 3–40-word captions from Conceptual Captions' validation file, punctuation rejoined. */
function captionsFromSharedData(count: number): string[] {
  const source = join(resolve(flags.data as string), "cc3m-validation", "captions.txt");
  if (!existsSync(source)) {
    fail(`${source} is missing: pass --captions FILE (one caption a line) or --data DIR`);
  }
  const lines = readFileSync(source, "utf8")
    .split("\n")
    .map((line) =>
      line
        .split(/\s+/)
        .join(" ")
        .replace(/ ([,.;:!?])/g, "$1")
        .replace(/^[ .]+|[ .]+$/g, ""),
    )
    .filter((line) => {
      const words = line.split(" ").length;
      return words >= 3 && words <= 40;
    });
  const random = seeded(14);
  // Partial Fisher–Yates: the first `count` entries become a uniform sample.
  for (let i = 0; i < Math.min(count, lines.length); i++) {
    const j = i + Math.floor(random() * (lines.length - i));
    [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
  }
  const picked = lines.slice(0, count);
  const file = join(ROOT, ".cache", "bench", "quality-captions.txt");
  mkdirSync(join(ROOT, ".cache", "bench"), { recursive: true });
  writeFileSync(file, `${picked.join("\n")}\n`);
  log(`${picked.length} captions from ${source} (seed 14) → ${file}`);
  return picked;
}

function readCaptions(count: number): string[] {
  if (!flags.captions) return captionsFromSharedData(count);
  const file = resolve(flags.captions);
  if (!existsSync(file)) fail(`--captions ${file} does not exist`);
  const captions = readFileSync(file, "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .slice(0, count);
  if (captions.length === 0) fail(`--captions ${file} has no captions`);
  return captions;
}

const quantArgs = (flags["quant-args"] as string).split(/\s+/).filter(Boolean);

function quantizedCopy(dir: string, quant: string): string {
  // Each set of exporter flags gets its own cached copy.
  const variant = quantArgs.join("").replace(/[^A-Za-z0-9]+/g, "-");
  const out = join(ROOT, ".cache", "bench", "quant", `${basename(dir)}-${quant}${variant}`);
  exportModel(["--from-onnx", dir, "--quant", quant, ...quantArgs], out, flags.json === true);
  return out;
}

/** Teacher-forced pass: for each position, the logits that predict the next token. */
async function* positionLogits(
  decoder: Gpt2OnnxDecoder,
  ids: readonly number[],
): AsyncGenerator<Float32Array> {
  let cache: KvCache = decoder.emptyCache(1);
  for (let i = 0; i < ids.length - 1; i++) {
    const step = await decoder.step([[ids[i] as number]], cache);
    cache = step.cache;
    yield step.lastLogits;
  }
}

/** -log softmax(logits)[target], computed stably. */
function crossEntropy(logits: Float32Array, target: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return Math.log(sum) + max - (logits[target] as number);
}

const count = Number(flags.count);
const threads = Number(flags.threads);
if (!Number.isInteger(count) || count < 1) fail("--count must be a positive whole number");
if (!Number.isInteger(threads) || threads < 0) fail("--threads must be a whole number");
const quants = (flags.quant as string).split(",").map((q) => q.trim());
for (const q of quants)
  if (!(q in GOALS)) fail(`--quant takes int8, int4 or both ("int8,int4"), not ${q}`);

const modelDir = resolve(flags.model as string);
const reference = await Gpt2OnnxDecoder.load(modelDir, { threads });
const { tags, architecture } = reference.model.metadata;
const captions = readCaptions(count);
const sequences = captions
  .map((c) => (tags ? encodeTaggedCaption(c, tags) : encodeText(c)))
  .map((ids) => ids.slice(0, architecture.nPositions))
  .filter((ids) => ids.length >= 2);
const candidates = await Promise.all(
  quants.map(async (q) => ({
    quant: q,
    decoder: await Gpt2OnnxDecoder.load(quantizedCopy(modelDir, q), { threads }),
    agree: 0,
    loss: 0,
  })),
);

let positions = 0;
let referenceLoss = 0;
for (const ids of sequences) {
  const streams = candidates.map((c) => positionLogits(c.decoder, ids));
  let i = 0;
  for await (const logits of positionLogits(reference, ids)) {
    const target = ids[i + 1] as number;
    const top = argmax(logits);
    referenceLoss += crossEntropy(logits, target);
    for (const [k, c] of candidates.entries()) {
      const next = await (streams[k] as AsyncGenerator<Float32Array>).next();
      const quantized = next.value as Float32Array;
      if (argmax(quantized) === top) c.agree++;
      c.loss += crossEntropy(quantized, target);
    }
    positions++;
    i++;
  }
}

const fp32Loss = referenceLoss / positions;
log(
  `model: ${modelDir}; ${sequences.length} captions, ${positions} predicted positions${quantArgs.length ? `; exporter flags ${quantArgs.join(" ")}` : ""}`,
);
log(`fp32 eval loss ${fp32Loss.toFixed(4)} nats/token`);
const results: Record<string, unknown> = {};
let missed = false;
for (const c of candidates) {
  const agreement = c.agree / positions;
  const loss = c.loss / positions;
  const change = (loss - fp32Loss) / fp32Loss;
  const goal = GOALS[c.quant] as { agreement: number; lossChange: number };
  const ok = agreement >= goal.agreement && Math.abs(change) <= goal.lossChange;
  missed ||= !ok;
  results[c.quant] = {
    top1Agreement: Number(agreement.toFixed(4)),
    evalLoss: Number(loss.toFixed(4)),
    lossChange: Number(change.toFixed(4)),
    meetsGoals: ok,
  };
  log(
    `${c.quant}: top-1 agreement ${(agreement * 100).toFixed(2)}% (goal ≥ ${goal.agreement * 100}%), eval loss ${loss.toFixed(4)} (${change >= 0 ? "+" : ""}${(change * 100).toFixed(2)}% vs fp32, goal within ${goal.lossChange * 100}%)${ok ? "" : "  ← goal missed"}`,
  );
  await c.decoder.close();
}
await reference.close();
if (flags.json) {
  console.log(
    JSON.stringify({
      model: modelDir,
      captions: sequences.length,
      positions,
      fp32: { evalLoss: Number(fp32Loss.toFixed(4)) },
      ...results,
    }),
  );
}
if (missed) process.exitCode = 1;
