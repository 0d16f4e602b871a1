import KeyvPostgres from "@keyv/postgres";
import { afterAll, describe, expect, it } from "vitest";
import { openVoteStore } from "../../src/core/votes/index.js";
import { openPostgresKv } from "../../src/core/votes/kv.js";
import { claimThroughExpiry } from "./claims.js";
import { sampleGeneration, voteStoreContract } from "./contract.js";
import { kvCommitContract } from "./kv-commit.js";
import { requireService, runId } from "./services.js";

const url = requireService("IMAGINE_TEST_POSTGRES_URL", "PostgreSQL");

if (url) {
  // One table for this run (namespaces inside it per test), dropped at the end.
  const table = runId();
  const open = (space: string) =>
    openVoteStore(`${url}${url.includes("?") ? "&" : "?"}table=${table}&namespace=${space}`, {
      dataDir: "/nonexistent",
    });

  afterAll(async () => {
    const admin = new KeyvPostgres({ uri: url, table });
    await admin.query(`DROP TABLE IF EXISTS public."${table}"`);
    await admin.disconnect();
  });

  voteStoreContract("postgres", open, { persistent: true });

  let kvSpaces = 0;
  kvCommitContract("postgres", () =>
    openPostgresKv(url, {
      table,
      schema: "public",
      prefix: `kv${++kvSpaces}:`,
      display: "test postgres",
    }),
  );

  describe("postgres vote store", () => {
    it("expires claims by the store's clock and deletes expired ones now and then", async () => {
      let now = Date.parse("2026-01-01T00:00:00Z");
      const store = await openVoteStore(
        `${url}${url.includes("?") ? "&" : "?"}table=${table}&namespace=claims`,
        { dataDir: "/nonexistent", now: () => new Date(now) },
      );
      await claimThroughExpiry(store, (ms) => {
        now += ms;
      });
      await store.close();
      const admin = new KeyvPostgres({ uri: url, table });
      const rows = (await admin.query(
        `SELECT key FROM public."${table}" WHERE key LIKE 'claims:claim/%' ORDER BY key COLLATE "C"`,
      )) as { key: string }[];
      await admin.disconnect();
      expect(rows.map((row) => row.key)).toEqual(["claims:claim/event-251", "claims:claim/long"]);
    });

    it("stores each vote as its own row of the run's table", async () => {
      const store = await open("rows");
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      await Promise.all(
        ["a", "b", "c"].map((rater) =>
          store.castVote({ generationId: generation.id, rater, dimension: "quality", score: 1 }),
        ),
      );
      await store.close();
      const admin = new KeyvPostgres({ uri: url, table });
      const rows = (await admin.query(
        `SELECT key FROM public."${table}" WHERE key LIKE $1 ORDER BY key`,
        [`rows:vote/${generation.id}/%`],
      )) as { key: string }[];
      await admin.disconnect();
      expect(rows.map((row) => row.key)).toEqual(
        ["a", "b", "c"].map((rater) => `rows:vote/${generation.id}/${rater}/quality`),
      );
    });
  });
}
