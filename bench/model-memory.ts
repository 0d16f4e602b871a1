/**
 * Resident memory and load time of model directories as the prompt engine loads them, one fresh
 * process per directory (resident memory is per process): session load, then the 4-token prefix
 * and 2 steps at batch 5 (arenas and the KV cache allocated). Resident memory is split into
 * anonymous pages (what onnxruntime allocated: prepacked weights, arenas) and file-backed pages
 * (mapped external-data weights, which the kernel can drop and read again).
 *
 *   npx tsx bench/model-memory.ts                     # GPT-2 small, random weights (.cache/bench)
 *   npx tsx bench/model-memory.ts DIR [DIR…]          # one line per directory
 *   npx tsx bench/model-memory.ts --json DIR [DIR…]   # last line: a JSON array
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { Gpt2OnnxDecoder } from "../src/core/prompt/onnxDecoder.js";
import { encodeText } from "../src/core/prompt/tokenizer.js";
import { randomPreset } from "./lib/decodeBench.js";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    json: { type: "boolean", default: false },
    child: { type: "boolean", default: false },
    threads: { type: "string", default: "2" },
  },
});

interface Measured {
  dir: string;
  loadMs: number;
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
}

/** VmRSS, RssAnon and RssFile of this process, in bytes. */
function residentMemory(): { rss: number; anon: number; file: number } {
  const fields = new Map(
    readFileSync("/proc/self/status", "utf8")
      .split("\n")
      .map((line) => line.split(":"))
      .filter((parts) => parts.length === 2)
      .map(([key, value]) => [key as string, Number.parseInt(value as string, 10) * 1024]),
  );
  return {
    rss: fields.get("VmRSS") ?? 0,
    anon: fields.get("RssAnon") ?? 0,
    file: fields.get("RssFile") ?? 0,
  };
}

async function measure(dir: string): Promise<Measured> {
  const start = performance.now();
  const decoder = await Gpt2OnnxDecoder.load(dir, { threads: Number(flags.threads) });
  const loadMs = performance.now() - start;
  const first = await decoder.step([encodeText("a lighthouse at dusk")], decoder.emptyCache(1));
  let cache = decoder.selectRows(first.cache, [0, 0, 0, 0, 0]);
  for (let i = 0; i < 2; i++) {
    cache = (await decoder.step([[11], [13], [17], [19], [23]], cache)).cache;
  }
  const memory = residentMemory();
  await decoder.close();
  return {
    dir,
    loadMs: Math.round(loadMs),
    rssBytes: memory.rss,
    anonBytes: memory.anon,
    fileBytes: memory.file,
  };
}

if (flags.child) {
  console.log(JSON.stringify(await measure(positionals[0] as string)));
  process.exit(0);
}
// `npm run bench` runs every script without arguments: then the cached GPT-2 small export.
const dirs = positionals.length > 0 ? positionals : [randomPreset("gpt2", [], "", flags.json)];
const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
const results: Measured[] = [];
for (const dir of dirs.map((d) => resolve(d))) {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, import.meta.filename, "--child", "--threads", flags.threads, dir],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  const measured = JSON.parse(out.trim().split("\n").at(-1) as string) as Measured;
  results.push(measured);
  if (!flags.json) {
    console.log(
      `${dir}: load ${measured.loadMs} ms; resident ${gb(measured.rssBytes)} (anonymous ${gb(measured.anonBytes)}, file-backed ${gb(measured.fileBytes)})`,
    );
  }
}
if (flags.json) console.log(JSON.stringify(results));
