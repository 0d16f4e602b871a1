/**
 * Explicit-text filter throughput: captions checked per second on one core. The bound: data
 * preparation checks every caption of a 450,000-caption dataset, so ≥ 200,000 captions/s per
 * core for typical 10–20-word captions (about 2 s per core for the whole set).
 *
 *   npx tsx bench/safety.ts [captions.txt | captions.parquet]
 *
 * Default corpus: ../chat/data/laion400m-img2dataset-10k (parquet, column TEXT), then any
 * captions .txt under ../chat/data, then a generated LAION-like corpus when ../shared is absent.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { loadExplicitFilter } from "../src/core/safety/index.js";

const BOUND = 200_000;
const ROOT = resolve(import.meta.dirname, "..");
const SHARED = resolve(ROOT, "..", "shared", "data");

async function readCorpus(): Promise<{ name: string; captions: string[] }> {
  const candidates = [
    process.argv[2],
    resolve(SHARED, "laion400m-img2dataset-10k", "test_10000.parquet"),
    resolve(SHARED, "laion400m-img2dataset-10k", "captions_10000.txt"),
    resolve(SHARED, "cc3m-validation", "captions.txt"),
  ].filter((file): file is string => file !== undefined);
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    if (file.endsWith(".parquet")) {
      const rows = await parquetReadObjects({
        file: await asyncBufferFromFile(file),
        columns: ["TEXT"],
      });
      const captions = rows
        .map((row) => row.TEXT)
        .filter((text): text is string => typeof text === "string" && text.length > 0);
      return { name: file, captions };
    }
    const captions = readFileSync(file, "utf8").split("\n").filter(Boolean);
    return { name: file, captions };
  }
  return { name: "generated (../shared absent)", captions: generatedCorpus(10_000) };
}

/** LAION-like captions from a fixed vocabulary, a few with listed and innocent look-alikes. */
function generatedCorpus(count: number): string[] {
  const words = (
    "a the of in with and on for at by from to vintage modern red blue green black white wooden " +
    "house lighthouse cliff sunset oil painting portrait woman man dog cat tree river mountain " +
    "city street night photo stock image illustration vector design poster print canvas art " +
    "dress shirt shoes table chair kitchen garden flower bird peacock cocktail class grass bass " +
    "Scunthorpe Sussex analysis document button title passage skyscraper 4k HD 1920x1080 #12"
  ).split(" ");
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  return Array.from({ length: count }, (_, i) => {
    const n = 8 + Math.floor(next() * 14);
    const caption = Array.from({ length: n }, () => words[Math.floor(next() * words.length)]);
    if (i % 200 === 0) caption.push("sh1t");
    return caption.join(" ");
  });
}

const loadStart = performance.now();
const filter = loadExplicitFilter();
const loadMs = performance.now() - loadStart;
const { name, captions } = await readCorpus();
const words = captions.reduce((sum, c) => sum + c.split(/\s+/).filter(Boolean).length, 0);

// Warm up, then time whole passes over the corpus for at least two seconds.
let blocked = 0;
for (const caption of captions) if (filter.check(caption).blocked) blocked++;
let checked = 0;
let bestPass = Number.POSITIVE_INFINITY;
const start = performance.now();
const cpuStart = process.cpuUsage();
while (performance.now() - start < 2000) {
  const passStart = performance.now();
  for (const caption of captions) filter.check(caption);
  bestPass = Math.min(bestPass, performance.now() - passStart);
  checked += captions.length;
}
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
// CPU time leaves out the time other processes held the core (a shared machine).
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const rate = checked / seconds;
// The fastest pass is the figure least disturbed by other processes on a shared machine.
const bestRate = captions.length / (bestPass / 1000);

console.log(`corpus: ${name}`);
console.log(
  `${captions.length} captions, ${(words / captions.length).toFixed(1)} words on average, ${blocked} blocked`,
);
console.log(`blocklist: ${filter.size} entries, loaded in ${loadMs.toFixed(1)} ms`);
console.log(
  `check: ${Math.round(checked / cpuSeconds).toLocaleString("en")} captions per CPU second; ` +
    `${Math.round(rate).toLocaleString("en")} captions/s on one core over 2 s ` +
    `(${((1e6 * seconds) / checked).toFixed(2)} µs each), fastest pass ` +
    `${Math.round(bestRate).toLocaleString("en")}/s; bound ≥ ${BOUND.toLocaleString("en")}/s: ` +
    `${rate >= BOUND ? "met" : bestRate >= BOUND ? "met on the fastest pass (machine busy?)" : "NOT met"}`,
);
