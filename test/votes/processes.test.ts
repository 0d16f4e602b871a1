/**
 * Several real processes on one Redis and one PostgreSQL vote store: three children (three
 * connections each) apply one rater's conflicting changes, each its share in its own order, all
 * at once; then this process
 * delivers every change again (a retry that reached another process). Every reader sees the vote
 * of the latest change, and the event log has each change once and replays to that vote.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import KeyvPostgres from "@keyv/postgres";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import type { VoteEvent } from "../../src/core/types.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import {
  applyConflict,
  type Conflict,
  conflictingChanges,
  expectedScore,
  replayScore,
  shuffled,
} from "./conflicts.js";
import { sampleGeneration } from "./contract.js";
import { requireService, runId } from "./services.js";

const redisUrl = requireService("IMAGINE_TEST_REDIS_URL", "Redis");
const postgresUrl = requireService("IMAGINE_TEST_POSTGRES_URL", "PostgreSQL");
const run = runId();
const CHILDREN = 3;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});

/** Starts a child that applies `changes`; resolves once its store is open. */
async function startChild(url: string, changes: Conflict[], target: object) {
  const child = spawn(process.execPath, ["--import", "tsx", "test/votes/vote-child.ts"], {
    env: {
      PATH: process.env.PATH,
      VOTE_STORE_URL: url,
      CHANGES: JSON.stringify(changes),
      TARGET: JSON.stringify(target),
      HANDLES: "3",
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  const exited = once(child, "exit").then(([code]) => {
    children.delete(child);
    if (code !== 0) throw new Error(`vote child exited ${String(code)}: ${stderr}`);
  });
  let stdout = "";
  child.stdout?.setEncoding("utf8");
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: string) => {
      stdout += chunk;
      if (stdout.includes("ready\n")) resolve();
    });
    exited.then(() => reject(new Error(`vote child ended before it was ready: ${stderr}`)), reject);
  });
  return { go: () => child.stdin?.write("go\n"), exited };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function raceProcesses(url: string, seed: number): Promise<void> {
  const store = await openVoteStore(url, { dataDir: "/nonexistent" });
  try {
    const generation = sampleGeneration({ platform: "slack" });
    await store.saveGeneration(generation);
    const target = {
      generationId: generation.id,
      rater: "slack:U5",
      dimension: "quality" as const,
      source: "slack",
    };
    const changes = conflictingChanges(seed, 90);
    const random = seededRandom(seed);
    const dealt = shuffled(changes, random).map((change, i) => ({ change, child: i % CHILDREN }));
    const shareOf = (child: number) => dealt.filter((d) => d.child === child).map((d) => d.change);
    const started = await Promise.all(
      Array.from({ length: CHILDREN }, (_, child) => startChild(url, shareOf(child), target)),
    );
    for (const child of started) child.go();
    await Promise.all(started.map((child) => child.exited));
    const settled = await store.votesOf(generation.id);
    for (const change of shuffled(changes, random)) {
      await applyConflict(store, change, target);
    }
    expect(await store.votesOf(generation.id)).toEqual(settled);

    const expected = expectedScore(changes, "slack");
    // A reader in this process and a new one see the same vote.
    const reader = await openVoteStore(url, { dataDir: "/nonexistent" });
    try {
      for (const view of [store, reader]) {
        expect((await view.votesOf(generation.id)).map((v) => v.score)).toEqual(
          expected === undefined ? [] : [expected],
        );
      }
      const events: VoteEvent[] = (await collect(reader.events())).filter(
        (event) => event.generationId === generation.id,
      );
      const ids = events.map((event) => event.eventId);
      expect(new Set(ids).size).toBe(ids.length);
      for (const change of changes.filter((c) => c.op === "cast")) {
        expect(ids.filter((id) => id === change.eventId)).toHaveLength(1);
      }
      expect(replayScore(events)).toBe(expected);
    } finally {
      await reader.close();
    }
  } finally {
    await store.close();
  }
}

if (redisUrl) {
  afterAll(async () => {
    await deleteRedisKeys(redisUrl, run);
  });

  describe("votes from several processes on one Redis", () => {
    it("resolve to the latest change for every reader, each event logged once", async () => {
      await raceProcesses(`${redisUrl}${redisUrl.includes("?") ? "&" : "?"}namespace=${run}`, 21);
    }, 60_000);
  });
}

if (postgresUrl) {
  afterAll(async () => {
    const admin = new KeyvPostgres({ uri: postgresUrl, table: run });
    await admin.query(`DROP TABLE IF EXISTS public."${run}"`);
    await admin.disconnect();
  });

  describe("votes from several processes on one PostgreSQL", () => {
    it("resolve to the latest change for every reader, each event logged once", async () => {
      await raceProcesses(
        `${postgresUrl}${postgresUrl.includes("?") ? "&" : "?"}table=${run}&namespace=p`,
        22,
      );
    }, 60_000);
  });
}
