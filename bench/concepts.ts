/**
 * `data concepts` end to end on the paper's scale: 300,000 captions, read from a text file,
 * noun phrases extracted with wink-nlp, counted, scored against WordNet. Bound: under 60 s on
 * 2 cores. The corpus is the shared caption data (CC3M validation, Flickr8k, LAION 10k)
 * repeated to 300,000 lines in a temporary file; without ../shared, a generated corpus.
 *
 *   npx tsx bench/concepts.ts [captions]
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { extractConcepts } from "../src/core/data/concepts.js";
import { seededRandom } from "../src/core/random.js";

const BOUND_S = 60;
const CAPTIONS = Number(process.argv[2] ?? 300_000);
const SHARED = resolve(import.meta.dirname, "..", "..", "shared", "data");
const SOURCES = [
  "cc3m-validation/captions.txt",
  "flickr8k/captions.txt",
  "laion400m-img2dataset-10k/captions_10000.txt",
].map((file) => join(SHARED, file));

function sharedCaptions(): string[] | null {
  const present = SOURCES.filter((file) => existsSync(file));
  if (present.length === 0) return null;
  return present.flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== ""),
  );
}

function generatedCaptions(count: number): string[] {
  const random = seededRandom(7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random.next() * items.length)] as T;
  const adjectives = ["red", "old", "small", "wooden", "snowy", "bright", "young", "tall"];
  const nouns = ["fox", "lighthouse", "dog", "bank", "girl", "mountain", "bicycle", "river"];
  const places = ["the beach", "a forest", "the city at night", "a field of flowers", "the snow"];
  const verbs = ["standing in", "running through", "painted in", "photographed near"];
  return Array.from(
    { length: count },
    () =>
      `a ${pick(adjectives)} ${pick(nouns)} ${pick(verbs)} ${pick(places)}, ` +
      `oil painting by ${pick(["Monet", "an unknown artist", "John Smith"])}`,
  );
}

const base = sharedCaptions();
const source = base ? `shared data (${base.length} captions, repeated)` : "generated captions";
const lines = base ?? generatedCaptions(CAPTIONS);
const dir = await mkdtemp(join(tmpdir(), "imagine-concepts-bench-"));
const file = join(dir, "captions.txt");
await writeFile(
  file,
  `${Array.from({ length: CAPTIONS }, (_, i) => lines[i % lines.length]).join("\n")}\n`,
);

try {
  const start = performance.now();
  const report = await extractConcepts({ inputs: [file], top: 10, minCount: 5 });
  const seconds = (performance.now() - start) / 1000;
  const peakMiB = process.resourceUsage().maxRSS / 1024;
  console.log(`corpus: ${source}`);
  console.log(
    `${report.captions} captions → ${report.phrases} distinct noun phrases, ` +
      `${report.candidates} ranked: ${seconds.toFixed(1)} s ` +
      `(${((report.captions / seconds) | 0).toLocaleString("en")} captions/s), ` +
      `peak RSS ${peakMiB.toFixed(0)} MiB  (bound < ${BOUND_S} s) ${seconds < BOUND_S ? "ok" : "OVER"}`,
  );
  for (const c of report.concepts) {
    console.log(
      `  ${String(c.rank).padStart(2)}  ${c.phrase.padEnd(20)} ${String(c.count).padStart(6)}  ` +
        `senses ${c.senses ?? "-"}  total ${c.total.toFixed(3)}`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
