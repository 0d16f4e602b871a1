/**
 * Prompt engine throughput on a GPT-2-small-sized model (124M parameters, random weights
 * exported by training/export_onnx.py), on this machine's CPU.
 *
 * Decoding one token reads every weight once, so a step is memory-bound: the bound is
 *   steps/s ≤ memory read bandwidth ÷ weight bytes.
 * This prints steps/s and tokens/s at batch 1 and 5 (4-token subject, 24 new tokens), the weight
 * bytes read per second, the measured read bandwidth, and their ratio (goal: ≥ 60%).
 *
 *   npm run bench:prompt                 # exports the model on first run (needs python3-torch)
 *   npm run bench:prompt -- --model DIR  # any model directory
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { Gpt2OnnxDecoder } from "../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../src/core/prompt/onnxGenerator.js";
import { encodeText } from "../src/core/prompt/tokenizer.js";

const ROOT = resolve(import.meta.dirname, "..");
const { values: flags } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: "0" },
    repeats: { type: "string", default: "3" },
  },
});

const SUBJECT = "a lighthouse at dusk"; // 4 GPT-2 tokens
const NEW_TOKENS = 24;
const GOAL = 0.6;

function ensureModel(): string {
  if (flags.model) return resolve(flags.model);
  const dir = join(ROOT, ".cache", "bench", "gpt2-small-random");
  if (!existsSync(join(dir, "imagine-model.json"))) {
    console.log(`exporting a random-weight GPT-2 small to ${dir} (once)…`);
    execFileSync(
      "/usr/bin/python3",
      [
        join(ROOT, "training", "export_onnx.py"),
        "--random",
        "gpt2",
        "--seed",
        "0",
        "--out",
        dir,
        "--no-golden",
        "--mean-caption-tokens",
        "24",
      ],
      { stdio: "inherit" },
    );
  }
  return dir;
}

/** Read bandwidth with every core busy: workers memcmp two equal 256 MiB buffers (reads only). */
async function measureReadBandwidth(workers: number): Promise<number> {
  const source = `
    const { parentPort } = require("node:worker_threads");
    const size = 256 * 1024 * 1024;
    const a = Buffer.alloc(size, 7), b = Buffer.alloc(size, 7);
    a.compare(b); // warm the pages
    const start = process.hrtime.bigint();
    let bytes = 0;
    for (let i = 0; i < 6; i++) { if (a.compare(b) !== 0) throw new Error("unequal"); bytes += 2 * size; }
    parentPort.postMessage({ bytes, seconds: Number(process.hrtime.bigint() - start) / 1e9 });`;
  const results = await Promise.all(
    Array.from(
      { length: workers },
      () =>
        new Promise<{ bytes: number; seconds: number }>((done, fail) => {
          const worker = new Worker(source, { eval: true });
          worker.once("message", (m) => {
            done(m);
            void worker.terminate();
          });
          worker.once("error", fail);
        }),
    ),
  );
  return results.reduce((sum, r) => sum + r.bytes / r.seconds, 0);
}

async function timeDecode(decoder: Gpt2OnnxDecoder, batch: number): Promise<number> {
  const prefix = encodeText(SUBJECT);
  const first = await decoder.step([prefix], decoder.emptyCache(1));
  let cache = decoder.selectRows(
    first.cache,
    Array.from({ length: batch }, () => 0),
  );
  const start = performance.now();
  for (let i = 0; i < NEW_TOKENS; i++) {
    const step = await decoder.step(
      Array.from({ length: batch }, (_, row) => [(i * 31 + row * 7) % 50000]),
      cache,
    );
    cache = step.cache;
  }
  return NEW_TOKENS / ((performance.now() - start) / 1000);
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

const modelDir = ensureModel();
const threads = Number(flags.threads);
const repeats = Number(flags.repeats);
const rssBefore = process.memoryUsage().rss;
const loadStart = performance.now();
const decoder = await Gpt2OnnxDecoder.load(modelDir, { threads });
// What a first request waits for beyond the session: the engine's token masks (cleanOutput.ts).
new OnnxPromptGenerator(decoder, {
  sampling: { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 },
});
const loadMs = performance.now() - loadStart;
const rssLoaded = process.memoryUsage().rss;
const weightBytes = statSync(decoder.model.onnxPath).size;
const { architecture } = decoder.model.metadata;

console.log(`model: ${modelDir}`);
console.log(
  `  ${architecture.nLayer} layers × ${architecture.nEmbd} wide, ${gb(weightBytes)} of float32 weights; intra-op threads: ${threads || "onnxruntime default"}`,
);
console.log(
  `  resident memory: ${gb(rssBefore)} before load, ${gb(rssLoaded)} loaded (bound: < 1 GB for GPT-2 small)`,
);
console.log(
  `  load: ${loadMs.toFixed(0)} ms for the session and the generator's token masks (bound: < 1 s for the shipped default model)`,
);

const bandwidth = await measureReadBandwidth(2);
console.log(`memory read bandwidth (2 workers, memcmp): ${gb(bandwidth)}/s`);
console.log(
  `bound: ${(bandwidth / weightBytes).toFixed(1)} steps/s at 100% of bandwidth, goal ≥ ${(GOAL * 100).toFixed(0)}%`,
);
console.log("");

const generator = new OnnxPromptGenerator(decoder, {
  sampling: { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 },
  maxNewTokens: NEW_TOKENS,
});
await timeDecode(decoder, 1); // warm-up: first runs allocate arenas

for (const batch of [1, 5]) {
  const stepRates: number[] = [];
  for (let r = 0; r < repeats; r++) stepRates.push(await timeDecode(decoder, batch));
  const steps = Math.max(...stepRates);
  const share = (weightBytes * steps) / bandwidth;
  // End to end: prefix, sampling and all; tokens/s counts every token written for every prompt.
  const start = performance.now();
  const prompts = await generator.generate({ subject: SUBJECT, count: batch, seed: 1 });
  const seconds = (performance.now() - start) / 1000;
  const tokens = prompts.reduce((sum, p) => sum + p.tokens, 0);
  console.log(
    `batch ${batch}: ${steps.toFixed(1)} steps/s, ${(steps * batch).toFixed(1)} tokens/s decoding; ` +
      `weights read ${gb(weightBytes * steps)}/s = ${(share * 100).toFixed(0)}% of bandwidth (goal ≥ ${GOAL * 100}%); ` +
      `end to end ${(tokens / seconds).toFixed(1)} tokens/s (${tokens} tokens in ${(seconds * 1000).toFixed(0)} ms)`,
  );
}
console.log(`resident memory after decoding: ${gb(process.memoryUsage().rss)}`);
await decoder.close();
