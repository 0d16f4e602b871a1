/**
 * The SQLite vote store (the default backend) under load:
 *   1. votes recorded per second by 50 concurrent writers, 20,000 votes in all, as chat reactions
 *      arrive: each castVote reads the current vote, writes the vote and appends an event
 *      (goal: at least 2,000 votes/s);
 *   2. time to stream the 100,000 current votes of one study (2,500 generations × 20 raters × 2
 *      dimensions) with studyVotes, as the statistics do (goal: under 10 s; memory stays flat).
 * A temporary file on local disk, WAL journal, synchronous=NORMAL (the store's settings).
 * `--store URL` runs part 1 on that store instead (a Redis or PostgreSQL URL, e.g. from
 * `eval "$(scripts/services.sh)"`), under a namespace / table of its own that is removed after.
 *
 *   npx tsx bench/votes.ts [--writers 50] [--votes 20000] [--study-votes 100000] [--store URL]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import KeyvPostgres from "@keyv/postgres";
import { createClient } from "@keyv/redis";
import type { Dimension, Generation } from "../src/core/types.js";
import { openVoteStore } from "../src/core/votes/index.js";
import { benchGeneration } from "./lib/generation.js";

const WRITE_GOAL_PER_S = 2000;
const STREAM_GOAL_MS = 10_000;
const RATERS_PER_GENERATION = 20;

const { values } = parseArgs({
  options: {
    writers: { type: "string", default: "50" },
    votes: { type: "string", default: "20000" },
    "study-votes": { type: "string", default: "100000" },
    store: { type: "string" },
  },
});
const WRITERS = Number(values.writers);
const VOTES = Number(values.votes);
const STUDY_VOTES = Number(values["study-votes"]);

function generation(id: string, studyId?: string): Generation {
  return benchGeneration(id, {
    arm: ["base", "ft-no-tags", "ft-tags"][Number(id.split("-").pop()) % 3] as string,
    ...(studyId ? { studyId } : {}),
  });
}

/** Runs `count` tasks on `writers` concurrent loops; returns the elapsed milliseconds. */
async function concurrently(
  writers: number,
  count: number,
  task: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
  return performance.now() - start;
}

/**
 * The store for part 1, in a space of its own on a shared server, and how to remove that space.
 */
function writeStore(): { url: string; label: string; remove: () => Promise<void> } {
  const url = values.store;
  if (url === undefined)
    return { url: "sqlite://votes.sqlite", label: "sqlite", remove: async () => {} };
  const space = `bench${Date.now().toString(36)}`;
  const join = url.includes("?") ? "&" : "?";
  if (/^rediss?:/.test(url)) {
    return {
      url: `${url}${join}namespace=${space}`,
      label: "redis",
      remove: async () => {
        const client = createClient({ url });
        await client.connect();
        for await (const batch of client.scanIterator({ MATCH: `${space}:*`, COUNT: 1000 })) {
          if (batch.length > 0) await client.del(batch);
        }
        await client.close();
      },
    };
  }
  if (/^postgres(ql)?:/.test(url)) {
    return {
      url: `${url}${join}table=${space}`,
      label: "postgres",
      remove: async () => {
        const admin = new KeyvPostgres({ uri: url, table: space });
        await admin.query(`DROP TABLE IF EXISTS public."${space}"`);
        await admin.disconnect();
      },
    };
  }
  throw new Error(`--store: expected a redis:// or postgresql:// URL, got ${url}`);
}

const dataDir = mkdtempSync(join(tmpdir(), "imagine-bench-votes-"));
const target = writeStore();
try {
  // 1. Write throughput: reactions on 200 images from 1,000 people, some replacing earlier votes.
  const store = await openVoteStore(target.url, { dataDir });
  const generations = 200;
  for (let g = 0; g < generations; g++) await store.saveGeneration(generation(`w-${g}`));
  const dimensions: Dimension[] = ["quality", "faithfulness"];
  const ms = await concurrently(WRITERS, VOTES, (i) =>
    store.castVote({
      generationId: `w-${i % generations}`,
      rater: `discord:${(i * 7919) % 1000}`,
      dimension: dimensions[i % 2] as Dimension,
      score: (i % 4) + 1,
    }),
  );
  const perSecond = (VOTES / ms) * 1000;
  let events = 0;
  for await (const _ of store.events()) events++;
  await store.close();
  await target.remove();
  console.log(
    `write (${target.label}): ${VOTES} votes from ${WRITERS} concurrent writers in ${(ms / 1000).toFixed(2)} s = ` +
      `${Math.round(perSecond)} votes/s (goal ≥ ${WRITE_GOAL_PER_S}) ${perSecond >= WRITE_GOAL_PER_S ? "PASS" : "FAIL"}; ${events} events logged`,
  );

  // 2. Streaming a study's votes.
  const study = await openVoteStore("sqlite://study.sqlite", { dataDir });
  const studyGenerations = Math.ceil(STUDY_VOTES / (RATERS_PER_GENERATION * 2));
  for (let g = 0; g < studyGenerations; g++) {
    await study.saveGeneration(generation(`s-${g}`, "study-1"));
  }
  // Noise outside the study, which streaming must skip without reading.
  for (let g = 0; g < 200; g++) await study.saveGeneration(generation(`o-${g}`, "study-2"));
  const seedMs = await concurrently(WRITERS, STUDY_VOTES, (i) =>
    study.castVote({
      generationId: `s-${Math.floor(i / (RATERS_PER_GENERATION * 2))}`,
      rater: `slack:U${Math.floor(i / 2) % RATERS_PER_GENERATION}`,
      dimension: dimensions[i % 2] as Dimension,
      score: (i % 4) + 1,
    }),
  );
  console.log(
    `seed: ${STUDY_VOTES} study votes in ${(seedMs / 1000).toFixed(1)} s (${Math.round((STUDY_VOTES / seedMs) * 1000)} votes/s); ` +
      `file ${(statSync(join(dataDir, "study.sqlite")).size / 2 ** 20).toFixed(0)} MiB`,
  );
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let streamed = 0;
  let peakHeap = heapBefore;
  const streamStart = performance.now();
  for await (const vote of study.studyVotes("study-1")) {
    streamed++;
    if (vote.arm === "") throw new Error("vote without arm");
    if (streamed % 10_000 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  }
  const streamMs = performance.now() - streamStart;
  await study.close();
  if (streamed !== STUDY_VOTES) throw new Error(`streamed ${streamed}, expected ${STUDY_VOTES}`);
  console.log(
    `stream: ${streamed} votes of one study in ${(streamMs / 1000).toFixed(2)} s = ` +
      `${Math.round((streamed / streamMs) * 1000)} votes/s (goal < ${STREAM_GOAL_MS / 1000} s) ${streamMs < STREAM_GOAL_MS ? "PASS" : "FAIL"}; ` +
      `heap growth ≤ ${((peakHeap - heapBefore) / 2 ** 20).toFixed(0)} MiB`,
  );
} finally {
  await target.remove().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
}
