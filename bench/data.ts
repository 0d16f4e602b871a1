/**
 * `data prepare` throughput and memory: captions/s through read → clean → explicit filter →
 * GPT-2 tokens → token files, with peak RSS sampled every 50 ms (worker threads live in this
 * process, so RSS covers them).
 *
 * Input: ../chat/data/laion400m-img2dataset-10k/test_10000.parquet passed 100 times
 * (1,000,000 real LAION rows). Without ../shared, a generated corpus of 1,000,000 unique
 * caption lines in /tmp is used instead, and the output says so. Repeating one 10k file lets
 * the tokenizer's word cache help more than fresh LAION text would; --generated measures unique
 * captions instead.
 *
 * Goals: ≥ 50,000 captions/s at 1M rows, and flat memory: the peak RSS for 2M rows within
 * 64 MiB of the peak for 1M rows (runs of 100k, 1M and 2M rows after a 10k warm-up).
 *
 *   npx tsx bench/data.ts [--copies 100] [--workers N] [--generated]
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { explicitFilterSource, prepareCaptions } from "../src/core/data/prepare.js";

const ROOT = resolve(import.meta.dirname, "..");
const LAION = resolve(
  ROOT,
  "..",
  "shared",
  "data",
  "laion400m-img2dataset-10k",
  "test_10000.parquet",
);
const GOAL_CAPTIONS_PER_SECOND = 50_000;
const FLAT_BOUND_MIB = 64;

const { values: flags } = parseArgs({
  options: {
    copies: { type: "string", default: "100" },
    workers: { type: "string", default: String(availableParallelism()) },
    generated: { type: "boolean", default: false },
  },
});
const copies = Number(flags.copies);
const workers = Number(flags.workers);
const mib = (bytes: number) => bytes / 2 ** 20;

/** Unique, LAION-like caption lines (seeded), written once to /tmp. */
async function generatedCorpus(rows: number): Promise<string> {
  const path = join(tmpdir(), `imagine-bench-captions-${rows}.txt`);
  if (existsSync(path)) return path;
  const subjects = ["lighthouse", "red fox", "mountain lake", "vintage car", "cat", "city street"];
  const styles = ["oil painting", "photo", "watercolor", "poster", "illustration", "3d render"];
  const extras = ["at dusk", "in snow", "by the sea", "&amp; friends", "<b>HD</b>", "for sale"];
  let state = 12345;
  const next = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) {
    lines.push(
      `${styles[next(6)]} of a ${subjects[next(6)]} ${extras[next(6)]} no. ${i} ` +
        `item ${next(100_000)} size ${next(40)}x${next(40)}`,
    );
  }
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

async function measure(inputs: string[]) {
  const out = await mkdtemp(join(tmpdir(), "imagine-bench-data-"));
  let peak = process.memoryUsage().rss;
  const samples: number[] = [];
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss;
    peak = Math.max(peak, rss);
    samples.push(rss);
  }, 50);
  try {
    const report = await prepareCaptions({
      inputs,
      outDir: out,
      tags: { start: "<|startoftext|>", end: "<|endoftext|>" },
      evalFraction: 0.1,
      seed: 1,
      filter: explicitFilterSource({ extraBlockedWords: [], allowedWords: [] }),
      workers,
    });
    return { report, peak, samples };
  } finally {
    clearInterval(timer);
    await rm(out, { recursive: true, force: true });
  }
}

const useLaion = !flags.generated && existsSync(LAION);
if (!flags.generated && !useLaion) {
  console.log(`${LAION} is absent: falling back to a generated corpus of unique captions.`);
}
const inputsFor = async (n: number) =>
  useLaion ? Array.from({ length: n }, () => LAION) : [await generatedCorpus(n * 10_000)];

console.log(
  `data prepare, ${workers} worker(s), ${availableParallelism()} cores, node ${process.version}; ` +
    `input: ${useLaion ? "test_10000.parquet × N" : "generated unique captions"}`,
);
// Warm-up run (JIT, file cache), then 1/10 of the size, the size, and twice the size: with flat
// memory the peak does not grow with the rows.
await measure(await inputsFor(1));
const peaks = new Map<number, number>();
for (const n of [Math.max(1, Math.round(copies / 10)), copies, 2 * copies]) {
  const { report, peak, samples } = await measure(await inputsFor(n));
  peaks.set(n, peak);
  const at = (q: number) => mib(samples[Math.floor((samples.length - 1) * q)] ?? 0).toFixed(0);
  const half = Math.floor(samples.length / 2);
  const firstHalf = Math.max(...samples.slice(0, half));
  const secondHalf = Math.max(...samples.slice(half));
  console.log(
    `${String(report.read).padStart(9)} rows  ${report.durationSeconds.toFixed(2).padStart(6)} s  ` +
      `${Math.round(report.captionsPerSecond).toLocaleString("en-US").padStart(8)} captions/s  ` +
      `peak RSS ${mib(peak).toFixed(0)} MiB (1st/2nd half ${mib(firstHalf).toFixed(0)}/${mib(secondHalf).toFixed(0)}; ` +
      `at 25/50/75%: ${[0.25, 0.5, 0.75].map(at).join("/")})  ` +
      `kept ${report.kept}, explicit ${report.dropped.explicit}, empty ${report.dropped.empty}`,
  );
  if (n === copies) {
    const rate = report.captionsPerSecond;
    console.log(
      `captions/s at ${report.read.toLocaleString("en-US")} rows: ${Math.round(rate).toLocaleString("en-US")} ` +
        `(goal ≥ ${GOAL_CAPTIONS_PER_SECOND.toLocaleString("en-US")}) ${rate >= GOAL_CAPTIONS_PER_SECOND ? "OK" : "BELOW GOAL"}`,
    );
  }
}
const growth = mib((peaks.get(2 * copies) ?? 0) - (peaks.get(copies) ?? 0));
console.log(
  `memory: peak RSS ${mib(peaks.get(2 * copies) ?? 0).toFixed(0)} MiB at ${2 * copies * 10_000} rows vs ` +
    `${mib(peaks.get(copies) ?? 0).toFixed(0)} MiB at ${copies * 10_000}: ${growth >= 0 ? "+" : ""}${growth.toFixed(0)} MiB ` +
    `(bound ≤ +${FLAT_BOUND_MIB} MiB) ${growth <= FLAT_BOUND_MIB ? "OK (flat)" : "NOT FLAT"}`,
);
