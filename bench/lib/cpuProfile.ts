/**
 * A V8 .cpuprofile (node --cpu-prof) summed up: self time per function and per source file,
 * the largest first, so a benchmark's hot spots can be read without a profiler UI.
 *
 *   npx tsx bench/lib/cpuProfile.ts PROFILE.cpuprofile [--top 30] [--since-ms N]
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  functions: { name: string; ms: number }[];
  files: { name: string; ms: number }[];
}

/** Self time by function and by file; samples before `sinceMs` (from the start) are skipped. */
export function summarize(profile: Profile, sinceMs = 0): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  let elapsedUs = 0;
  for (const [i, id] of profile.samples.entries()) {
    const deltaUs = profile.timeDeltas[i] ?? 0;
    elapsedUs += deltaUs;
    if (elapsedUs < sinceMs * 1000) continue;
    const node = byId.get(id);
    if (node === undefined) continue;
    const ms = deltaUs / 1000;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    totalMs += ms;
    const file = shortUrl(url) || functionName;
    const name = `${functionName || "(anonymous)"} ${file}${url ? `:${lineNumber + 1}` : ""}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    files.set(file, (files.get(file) ?? 0) + ms);
  }
  const sorted = (map: Map<string, number>) =>
    [...map].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  return { totalMs, idleMs, functions: sorted(functions), files: sorted(files) };
}

function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\//, "")
    .replace(/^.*\/node_modules\//, "")
    .replace(/^.*\/(src|bench|test)\//, "$1/");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: "string", default: "30" },
      "since-ms": { type: "string", default: "0" },
    },
  });
  const file = positionals[0];
  if (file === undefined) {
    console.error(
      "usage: npx tsx bench/lib/cpuProfile.ts PROFILE.cpuprofile [--top 30] [--since-ms N]",
    );
    process.exit(2);
  }
  const summary = summarize(
    JSON.parse(await readFile(file, "utf8")) as Profile,
    Number(values["since-ms"]),
  );
  const top = Number(values.top);
  const share = (ms: number) =>
    `${ms.toFixed(0).padStart(7)} ms ${((100 * ms) / summary.totalMs).toFixed(1).padStart(5)}%`;
  console.log(`busy ${summary.totalMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`);
  console.log("self time by file:");
  for (const { name, ms } of summary.files.slice(0, top)) console.log(`${share(ms)}  ${name}`);
  console.log("self time by function:");
  for (const { name, ms } of summary.functions.slice(0, top)) console.log(`${share(ms)}  ${name}`);
}
