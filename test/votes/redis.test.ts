import { createClient } from "@keyv/redis";
import { afterAll, describe, expect, it } from "vitest";
import { openVoteStore } from "../../src/core/votes/index.js";
import { openRedisKv } from "../../src/core/votes/kv.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import { sampleGeneration, voteStoreContract } from "./contract.js";
import { kvCommitContract } from "./kv-commit.js";
import { requireService, runId } from "./services.js";

const url = requireService("IMAGINE_TEST_REDIS_URL", "Redis");

if (url) {
  const run = runId();
  const withNamespace = (namespace: string) =>
    `${url}${url.includes("?") ? "&" : "?"}namespace=${namespace}`;

  afterAll(async () => {
    // Every key this run wrote starts with its id: values and index sorted sets alike.
    await deleteRedisKeys(url, run);
  });

  voteStoreContract(
    "redis",
    (space) => openVoteStore(withNamespace(`${run}-${space}`), { dataDir: "/nonexistent" }),
    { persistent: true },
  );

  let kvSpaces = 0;
  kvCommitContract("redis", () =>
    openRedisKv(url, { prefix: `${run}-kv${++kvSpaces}:`, display: "test redis" }),
  );

  describe("redis vote store", () => {
    it("loads its commit script again after the server forgot it (SCRIPT FLUSH)", async () => {
      const store = await openVoteStore(withNamespace(`${run}-flush`), { dataDir: "/nonexistent" });
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const vote = { generationId: generation.id, rater: "r", dimension: "quality" as const };
      await store.castVote({ ...vote, score: 1 });
      const client = createClient({ url });
      await client.connect();
      await client.scriptFlush();
      await client.close();
      await store.castVote({ ...vote, score: 3 });
      expect((await store.votesOf(generation.id)).map((v) => v.score)).toEqual([3]);
      await store.close();
    });

    it("indexes with sorted sets beside plain values, under the namespace only", async () => {
      const namespace = `${run}-layout`;
      const store = await openVoteStore(withNamespace(namespace), { dataDir: "/nonexistent" });
      const generation = sampleGeneration({ studyId: "s1" });
      await store.saveGeneration(generation);
      await store.castVote({
        generationId: generation.id,
        rater: "r",
        dimension: "quality",
        score: 2,
      });
      await store.close();
      const client = createClient({ url });
      await client.connect();
      const found: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: "*", COUNT: 1000 })) {
        found.push(...batch.filter((key) => key.includes(namespace)));
      }
      await client.close();
      expect(found.every((key) => key.startsWith(`${namespace}:`))).toBe(true);
      expect(found).toContain(`${namespace}:index:vote/${generation.id}/`);
      expect(found).toContain(`${namespace}:vote/${generation.id}/r/quality`);
    });
  });
}
