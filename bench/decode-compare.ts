/**
 * Decode speed of several model directories (e.g. the same weights quantized different ways),
 * all loaded in one process and timed interleaved, so a busy moment on the shared host hits every
 * variant alike. Per directory: steps/s at batch 1 and 5 (median of the repeats, each repeat's
 * figure beside it), the ratio to the first directory per repeat, and resident memory right after
 * its load and warm-up; with --profile, onnxruntime's own time per operator at batch 5.
 *
 *   npx tsx bench/decode-compare.ts DIR DIR… [--repeats 3] [--batches 1,5] [--threads 2] [--spinning] [--profile] [--json]
 *   npx tsx bench/decode-compare.ts      # no DIR: GPT-2 small (random weights) fp32, int8, int4,
 *                                        # exported once into .cache/bench (as `npm run bench` runs it)
 *
 * bench/prompt.ts measures one model against the bandwidth bound; this one ranks variants.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Gpt2OnnxDecoder } from "../src/core/prompt/onnxDecoder.js";
import { BATCHES, median, randomPreset, readOnnxProfile, timeDecode } from "./lib/decodeBench.js";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    repeats: { type: "string", default: "3" },
    batches: { type: "string", default: BATCHES.join(",") },
    threads: { type: "string", default: "2" },
    spinning: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

function fail(message: string): never {
  console.error(`decode-compare: ${message}`);
  process.exit(2);
}

const repeats = Number(flags.repeats);
const threads = Number(flags.threads);
if (!Number.isInteger(repeats) || repeats < 1) fail("--repeats must be a positive whole number");
if (!Number.isInteger(threads) || threads < 0) fail("--threads must be a whole number");
// With no directory, the variants every run of `npm run bench` can make for itself.
const dirs =
  positionals.length > 0
    ? positionals
    : [
        randomPreset("gpt2", [], "", flags.json === true),
        randomPreset("gpt2", ["--quant", "int8"], "-int8", flags.json === true),
        randomPreset("gpt2", ["--quant", "int4"], "-int4", flags.json === true),
      ];
const batches = (flags.batches as string).split(",").map(Number);
if (batches.some((b) => !Number.isInteger(b) || b < 1))
  fail("--batches takes batch sizes separated by commas, e.g. 1,2,4,5");
const log = flags.json ? () => {} : (line: string) => console.log(line);

/** onnxruntime's ms per run by operator type over one batch-5 decode, in a profiling session. */
async function profile(
  dir: string,
): Promise<{ runMs: number; lmHeadMs: number; ops: Record<string, number> }> {
  const folder = mkdtempSync(join(tmpdir(), "imagine-compare-"));
  try {
    const decoder = await Gpt2OnnxDecoder.load(dir, { threads, profile: join(folder, "run") });
    await timeDecode(decoder, 5);
    decoder.endProfiling();
    await decoder.close();
    const summary = readOnnxProfile(folder);
    return {
      runMs: Number(summary.runMs.toFixed(1)),
      lmHeadMs: Number(summary.lmHeadMs.toFixed(1)),
      ops: Object.fromEntries(
        summary.ops.slice(0, 8).map(([op, ms]) => [op, Number(ms.toFixed(1))]),
      ),
    };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
const models: { dir: string; decoder: Gpt2OnnxDecoder; rssGrowth: number; steps: number[][] }[] =
  [];
for (const dir of dirs.map((d) => resolve(d))) {
  const before = process.memoryUsage().rss;
  const decoder = await Gpt2OnnxDecoder.load(dir, {
    threads,
    spinning: flags.spinning as boolean,
  });
  for (const batch of batches) await timeDecode(decoder, batch); // arenas, first-run allocations
  const rssGrowth = process.memoryUsage().rss - before;
  log(`${dir}: resident memory +${gb(rssGrowth)} after load and warm-up`);
  models.push({ dir, decoder, rssGrowth, steps: batches.map(() => []) });
}
for (let r = 0; r < repeats; r++) {
  for (const [b, batch] of batches.entries()) {
    for (const m of models) (m.steps[b] as number[]).push(await timeDecode(m.decoder, batch));
  }
}
const base = models[0] as (typeof models)[number];
const results = [];
for (const m of models) {
  await m.decoder.close();
  const result = {
    dir: m.dir,
    rssGrowthBytes: m.rssGrowth,
    batches: Object.fromEntries(
      batches.map((batch, b) => {
        const steps = m.steps[b] as number[];
        const ratios = steps.map((s, i) => s / ((base.steps[b] as number[])[i] as number));
        return [
          String(batch),
          {
            stepsPerSecond: Number(median(steps).toFixed(2)),
            perRepeat: steps.map((s) => Number(s.toFixed(2))),
            ratioToFirst: Number(median(ratios).toFixed(2)),
          },
        ];
      }),
    ),
    ...(flags.profile ? { profileBatch5: await profile(m.dir) } : {}),
  };
  results.push(result);
  const line = batches
    .map((batch) => {
      const r = result.batches[String(batch)] as {
        stepsPerSecond: number;
        perRepeat: number[];
        ratioToFirst: number;
      };
      return `batch ${batch} ${r.stepsPerSecond} steps/s (${r.perRepeat.join(", ")}; ×${r.ratioToFirst})`;
    })
    .join("; ");
  log(`${m.dir}: ${line}`);
  if (result.profileBatch5) {
    const { runMs, lmHeadMs, ops } = result.profileBatch5;
    log(
      `  profile batch 5: ${runMs} ms per run (lm_head ${lmHeadMs}); ${Object.entries(ops)
        .map(([op, ms]) => `${op} ${ms}`)
        .join(", ")}`,
    );
  }
}
if (flags.json) console.log(JSON.stringify(results));
