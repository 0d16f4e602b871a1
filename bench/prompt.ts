/**
 * Prompt engine throughput on a GPT-2-sized model (random weights exported by
 * training/export_onnx.py, or any model directory), on this machine's CPU.
 *
 * Decoding one token reads every weight the step uses once, so a step is memory-bound:
 *   steps/s ≤ memory read bandwidth ÷ bytes streamed per step.
 * The bytes streamed are counted from the graph (bench/lib/onnxGraph.ts: every initializer a
 * MatMul/Gemm/LayerNorm/Add reads, lm_head included, not an embedding only indexed by a Gather,
 * not unused copies), not taken from the file size. The host is shared and its bandwidth swings
 * (8–32 GB/s), so bandwidth is measured in every repeat right next to the decode timings it
 * divides, and with --quant the quantized and the fp32 model are timed interleaved.
 *
 *   npm run bench:prompt                           # GPT-2 small, exported once into .cache
 *   npm run bench:prompt -- --model DIR            # any model directory
 *   npm run bench:prompt -- --quant int4           # int4 copy vs fp32, interleaved
 *   npm run bench:prompt -- --preset gpt2-xl --quant int4 --no-baseline   # no 6.2 GB fp32 session
 *   npm run bench:prompt -- --fused-attention       # MultiHeadAttention export vs plain, interleaved
 *   npm run bench:prompt -- --compare-spinning      # the engine (threads wait idle) vs spin-waiting
 *   npm run bench:prompt -- --profile               # + onnxruntime's time per operator, batch 1 vs 5
 *   npm run -s bench:prompt -- --json              # last line: one JSON object
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { readModelDirectory } from "../src/core/prompt/modelDir.js";
import { Gpt2OnnxDecoder } from "../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../src/core/prompt/onnxGenerator.js";
import {
  BATCHES,
  exportModel,
  measureReadBandwidth,
  median,
  NEW_TOKENS,
  ROOT,
  randomPreset,
  readOnnxProfile,
  SUBJECT,
  timeDecode,
} from "./lib/decodeBench.js";
import { summarizeOnnxGraph } from "./lib/onnxGraph.js";

const { values: flags } = parseArgs({
  options: {
    model: { type: "string" },
    preset: { type: "string", default: "gpt2" },
    quant: { type: "string" },
    "fused-attention": { type: "boolean", default: false },
    "no-baseline": { type: "boolean", default: false },
    "compare-spinning": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    threads: { type: "string", default: "2" },
    repeats: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});

const GOAL = 0.75;
const PRESETS = new Set(["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]);
const QUANTS = new Set(["int8", "int4"]);

const quiet = flags.json === true;
const log = quiet ? () => {} : (line: string) => console.log(line);

function fail(message: string): never {
  console.error(`bench:prompt: ${message}`);
  process.exit(2);
}

/**
 * The fp32 model directory: --model, or random weights of --preset exported once into .cache
 * (the same seed with and without fused attention, so both graphs hold the same weights).
 */
function fp32Model(fused: boolean): string {
  if (flags.model) {
    if (fused)
      fail("--fused-attention re-exports a preset's random weights; it does not take --model");
    return resolve(flags.model);
  }
  const preset = flags.preset as string;
  if (!PRESETS.has(preset)) fail(`--preset must be one of ${[...PRESETS].join(", ")}`);
  return fused
    ? randomPreset(preset, ["--fused-attention"], "-fused", quiet)
    : randomPreset(preset, [], "", quiet);
}

/** A weight-only quantized copy of `dir` under .cache (the source directory is never touched). */
function quantizedModel(dir: string, quant: string): string {
  const out = join(ROOT, ".cache", "bench", "quant", `${basename(dir)}-${quant}`);
  exportModel(["--from-onnx", dir, "--quant", quant], out, quiet);
  return out;
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

interface Measured {
  label: string;
  dir: string;
  decoder: Gpt2OnnxDecoder;
  streamedBytes: number;
  fileBytes: number;
  rssBytes: number;
  loadMs: number;
  /** Per batch: one steps/s and one bound share per repeat. */
  steps: Map<number, number[]>;
  shares: Map<number, number[]>;
}

async function load(
  label: string,
  dir: string,
  threads: number,
  spinning = false,
): Promise<Measured> {
  const rssBefore = process.memoryUsage().rss;
  const start = performance.now();
  const decoder = await Gpt2OnnxDecoder.load(dir, { threads, spinning });
  // What a first request waits for beyond the session: the engine's token masks (cleanOutput.ts).
  new OnnxPromptGenerator(decoder, {
    sampling: { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 },
  });
  const loadMs = performance.now() - start;
  for (const batch of BATCHES) await timeDecode(decoder, batch); // first runs allocate arenas
  const graph = summarizeOnnxGraph(decoder.model.onnxPath);
  const { architecture } = decoder.model.metadata;
  log(`${label}: ${dir}`);
  log(
    `  ${architecture.nLayer} layers × ${architecture.nEmbd} wide; ${gb(graph.initializerBytes)} of weights in the file, ${gb(graph.streamedBytes)} streamed per step (counted from the graph)`,
  );
  log(
    `  load ${loadMs.toFixed(0)} ms (session + token masks); resident memory ${gb(process.memoryUsage().rss)} after load and warm-up (${gb(rssBefore)} before)`,
  );
  return {
    label,
    dir,
    decoder,
    streamedBytes: graph.streamedBytes,
    fileBytes: graph.initializerBytes,
    rssBytes: process.memoryUsage().rss,
    loadMs,
    steps: new Map(BATCHES.map((b) => [b, []])),
    shares: new Map(BATCHES.map((b) => [b, []])),
  };
}

const quant = flags.quant;
if (quant !== undefined && !QUANTS.has(quant)) fail("--quant must be int8 or int4");
const threads = Number(flags.threads);
const repeats = Number(flags.repeats);
if (!Number.isInteger(threads) || threads < 0)
  fail("--threads must be a whole number (0 = all cores)");
if (!Number.isInteger(repeats) || repeats < 1) fail("--repeats must be a positive whole number");

const fused = flags["fused-attention"] as boolean;
const noBaseline = flags["no-baseline"] as boolean;
if (noBaseline && (!quant || fused))
  fail("--no-baseline goes with --quant (and not --fused-attention)");
const compareSpinning = flags["compare-spinning"] as boolean;
if (compareSpinning && (quant || fused))
  fail(
    "--compare-spinning compares one model with itself; leave out --quant and --fused-attention",
  );

/** gpt2-xl's float32 graph is 6.2 GB: with --no-baseline it is exported straight to --quant. */
function quantizedPreset(quantName: string): string {
  const preset = flags.preset as string;
  if (!PRESETS.has(preset)) fail(`--preset must be one of ${[...PRESETS].join(", ")}`);
  return randomPreset(preset, ["--quant", quantName], `-${quantName}`, quiet);
}

let fp32Dir: string | undefined;
let measuredDir: string;
if (noBaseline && quant) {
  measuredDir = flags.model ? quantizedModel(resolve(flags.model), quant) : quantizedPreset(quant);
} else {
  fp32Dir = fp32Model(false);
  const fusedDir = fused ? fp32Model(true) : undefined;
  measuredDir = quant ? quantizedModel(fusedDir ?? fp32Dir, quant) : (fusedDir ?? fp32Dir);
}
/** What exported DIR's weights are: int8 / int4 when export_onnx.py quantized them, else fp32. */
function weightsOf(dir: string): string {
  const { quantization } = readModelDirectory(dir).metadata.provenance as {
    quantization?: { weights?: string };
  };
  return quantization?.weights ?? "fp32";
}
const label = [fused ? "fused" : "", quant ?? weightsOf(measuredDir)].filter(Boolean).join(" ");
log(`intra-op threads: ${threads || "onnxruntime default"}; ${repeats} repeats, interleaved`);
// The measured model loads first, so its resident memory is its own; the baseline is the plain
// fp32 export of the same weights.
const models: Measured[] = [await load(label, measuredDir, threads)];
const compared = fp32Dir !== undefined && (quant !== undefined || fused);
if (compared) models.push(await load("fp32", fp32Dir as string, threads));
// The same model in a second session whose threads spin-wait between kernels (onnxruntime's default).
if (compareSpinning) models.push(await load(`${label} spinning`, measuredDir, threads, true));

const bandwidths: number[] = [];
for (let r = 0; r < repeats; r++) {
  const bandwidth = await measureReadBandwidth(2);
  bandwidths.push(bandwidth);
  for (const batch of BATCHES) {
    for (const m of models) {
      const steps = await timeDecode(m.decoder, batch);
      (m.steps.get(batch) as number[]).push(steps);
      (m.shares.get(batch) as number[]).push((m.streamedBytes * steps) / bandwidth);
    }
  }
}
const bandwidth = median(bandwidths);
log("");
log(
  `memory read bandwidth (2 workers, memcmp), one reading per repeat: ${bandwidths.map((b) => gb(b)).join(", ")}/s`,
);

const summary = (m: Measured) => ({
  model: m.dir,
  streamedBytesPerStep: m.streamedBytes,
  bandwidthBytesPerSecond: Math.round(bandwidth),
  batches: Object.fromEntries(
    BATCHES.map((b) => [
      String(b),
      {
        stepsPerSecond: Number(median(m.steps.get(b) as number[]).toFixed(2)),
        boundShare: Number(median(m.shares.get(b) as number[]).toFixed(3)),
      },
    ]),
  ),
  rssBytes: m.rssBytes,
});

for (const m of models) {
  for (const batch of BATCHES) {
    const steps = median(m.steps.get(batch) as number[]);
    const share = median(m.shares.get(batch) as number[]);
    log(
      `${m.label} batch ${batch}: ${steps.toFixed(1)} steps/s (${(m.steps.get(batch) as number[]).map((s) => s.toFixed(1)).join(", ")}), ` +
        `${(steps * batch).toFixed(1)} tokens/s; streamed ${gb(m.streamedBytes * steps)}/s = ${(share * 100).toFixed(0)}% of the bandwidth read beside it (goal ≥ ${GOAL * 100}%)`,
    );
  }
}
if (compared || compareSpinning) {
  const [q, f] = models as [Measured, Measured];
  for (const batch of BATCHES) {
    const ratios = (q.steps.get(batch) as number[]).map(
      (s, i) => s / ((f.steps.get(batch) as number[])[i] as number),
    );
    log(
      `${q.label} ÷ ${f.label} at batch ${batch}: ${median(ratios).toFixed(2)}× (per repeat ${ratios.map((r) => r.toFixed(2)).join(", ")})`,
    );
  }
}

// End to end with the measured model: prefix, sampling and all; every token of every prompt.
const generator = new OnnxPromptGenerator((models[0] as Measured).decoder, {
  sampling: { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 },
  maxNewTokens: NEW_TOKENS,
});
for (const batch of BATCHES) {
  const start = performance.now();
  const prompts = await generator.generate({ subject: SUBJECT, count: batch, seed: 1 });
  const seconds = (performance.now() - start) / 1000;
  const tokens = prompts.reduce((sum, p) => sum + p.tokens, 0);
  log(
    `end to end, batch ${batch}: ${(tokens / seconds).toFixed(1)} tokens/s (${tokens} tokens in ${(seconds * 1000).toFixed(0)} ms)`,
  );
}
log(`resident memory at the end: ${gb(process.memoryUsage().rss)}`);

/**
 * onnxruntime's own profile of the measured model, one session per batch size: milliseconds per
 * run by operator type over a warm-up decode and a timed one (each NEW_TOKENS steps after the
 * prefix), and the JavaScript time per step beside onnxruntime's model_run time.
 */
async function profileDecode(batch: number) {
  const folder = mkdtempSync(join(tmpdir(), "imagine-profile-"));
  try {
    const decoder = await Gpt2OnnxDecoder.load(measuredDir, {
      threads,
      profile: join(folder, "run"),
    });
    await timeDecode(decoder, batch);
    const jsStepMs = 1000 / (await timeDecode(decoder, batch));
    decoder.endProfiling();
    await decoder.close();
    const { runMs, ops } = readOnnxProfile(folder);
    return {
      runMs: Number(runMs.toFixed(2)),
      jsStepMs: Number(jsStepMs.toFixed(2)),
      ops: Object.fromEntries(ops.map(([op, ms]) => [op, Number(ms.toFixed(2))])),
    };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const profiles: Record<string, Awaited<ReturnType<typeof profileDecode>>> = {};
if (flags.profile) {
  for (const batch of BATCHES) {
    const profile = await profileDecode(batch);
    profiles[String(batch)] = profile;
    const top = Object.entries(profile.ops)
      .slice(0, 6)
      .map(([op, ms]) => `${op} ${ms.toFixed(2)}`)
      .join(", ");
    log(
      `profile, ${label} batch ${batch}: onnxruntime ${profile.runMs.toFixed(1)} ms per run, ${profile.jsStepMs.toFixed(1)} ms per step measured in JavaScript (with profiling on); by operator, ms per run: ${top}`,
    );
  }
}
for (const m of models) await m.decoder.close();

if (flags.json) {
  const [main, baseline] = models as [Measured, Measured | undefined];
  const result: Record<string, unknown> = summary(main);
  if (quant) result.quant = quant;
  if (compared && baseline) {
    if (fused) result.fusedAttention = true;
    const base = summary(baseline);
    result.fp32 = {
      model: base.model,
      streamedBytesPerStep: base.streamedBytesPerStep,
      batches: base.batches,
    };
  }
  if (compareSpinning && baseline) result.spinning = { batches: summary(baseline).batches };
  if (flags.profile) result.profile = profiles;
  console.log(JSON.stringify(result));
}
