import { once } from "node:events";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { openVoteStore } from "../../src/core/votes/index.js";
import { openSqliteKv } from "../../src/core/votes/kv.js";
import { SqliteKeyvStore } from "../../src/core/votes/sqlite.js";
import { claimThroughExpiry } from "./claims.js";
import { sampleGeneration, voteStoreContract } from "./contract.js";
import { kvCommitContract } from "./kv-commit.js";

const dataDir = mkdtempSync(join(tmpdir(), "imagine-votes-sqlite-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

voteStoreContract("sqlite", (space) => openVoteStore(`sqlite://${space}.sqlite`, { dataDir }), {
  persistent: true,
});

let kvFiles = 0;
kvCommitContract("sqlite", () =>
  openSqliteKv(join(dataDir, `kv${++kvFiles}.sqlite`), {
    table: "imagine_votes",
    prefix: "imagine:",
  }),
);

describe("sqlite vote store files", () => {
  it("puts relative paths in the data directory (created on demand) and takes absolute ones", async () => {
    const nested = join(dataDir, "nested", "deeper");
    const relative = await openVoteStore("sqlite://votes.sqlite", { dataDir: nested });
    await relative.saveGeneration(sampleGeneration());
    await relative.close();
    expect(existsSync(join(nested, "votes.sqlite"))).toBe(true);

    const file = join(dataDir, "absolute.sqlite");
    const absolute = await openVoteStore(`sqlite://${file}`, { dataDir: "/nonexistent" });
    await absolute.saveGeneration(sampleGeneration());
    await absolute.close();
    expect(existsSync(file)).toBe(true);
  });

  it("opens with synchronous=full (durable across a power loss) and records answers", async () => {
    const store = await openVoteStore("sqlite://full.sqlite?synchronous=FULL", { dataDir });
    const generation = sampleGeneration();
    await store.saveGeneration(generation);
    const events = await store.castAnswer({
      generationId: generation.id,
      rater: "web:full",
      scores: { quality: 2, faithfulness: 3 },
    });
    expect(events).toHaveLength(2);
    await store.close();
  });

  it("starts a vote's trail from a vote stored before trails existed", async () => {
    const file = join(dataDir, "legacy.sqlite");
    const store = await openVoteStore(`sqlite://${file}`, { dataDir });
    const generation = sampleGeneration();
    await store.saveGeneration(generation);
    await store.close();
    // The old store wrote the vote key alone (no trail): write one as it did.
    const legacy = await openSqliteKv(file, { table: "imagine_votes", prefix: "imagine:" });
    const vote = { generationId: generation.id, rater: "discord:9", dimension: "quality" as const };
    await legacy.set(
      `vote/${generation.id}/discord%3A9/quality`,
      { ...vote, score: 2, at: "2025-01-01T00:00:00.000Z" },
      `vote/${generation.id}/`,
    );
    await legacy.close();

    const reopened = await openVoteStore(`sqlite://${file}`, { dataDir });
    expect((await reopened.votesOf(generation.id)).map((v) => v.score)).toEqual([2]);
    // The stored 2 is the trail's starting point: replacing it says so, retracting the old
    // score afterwards changes nothing, retracting the current one removes it.
    expect(await reopened.castVote({ ...vote, score: 4 })).toMatchObject({
      kind: "replace",
      previous: 2,
    });
    expect(await reopened.retractVote({ ...vote, score: 2 })).toBeUndefined();
    expect(await reopened.retractVote({ ...vote, score: 4 })).toMatchObject({ kind: "retract" });
    expect(await reopened.votesOf(generation.id)).toEqual([]);
    await reopened.close();
  });

  it("starts an answer's trails from votes stored before trails existed", async () => {
    const file = join(dataDir, "legacy-answer.sqlite");
    const store = await openVoteStore(`sqlite://${file}`, { dataDir });
    const generation = sampleGeneration();
    await store.saveGeneration(generation);
    await store.close();
    const legacy = await openSqliteKv(file, { table: "imagine_votes", prefix: "imagine:" });
    const vote = { generationId: generation.id, rater: "web:ann", dimension: "quality" as const };
    await legacy.set(
      `vote/${generation.id}/web%3Aann/quality`,
      { ...vote, score: 2, at: "2025-01-01T00:00:00.000Z" },
      `vote/${generation.id}/`,
    );
    await legacy.close();

    // The first try expects no vote at all; the stored one makes it read and start from it.
    const reopened = await openVoteStore(`sqlite://${file}`, { dataDir });
    const events = await reopened.castAnswer({
      generationId: generation.id,
      rater: "web:ann",
      scores: { quality: 2, faithfulness: 3 },
    });
    expect(events.map((e) => [e.kind, e.dimension])).toEqual([["add", "faithfulness"]]);
    expect(
      (await reopened.votesOf(generation.id)).map((v) => [v.dimension, v.score]).sort(),
    ).toEqual([
      ["faithfulness", 3],
      ["quality", 2],
    ]);
    await reopened.close();
  });

  it("opens a file written by the earlier driver (@keyv/sqlite's table and value format)", async () => {
    const file = join(dataDir, "earlier-driver.sqlite");
    const generation = sampleGeneration();
    const earlier = new Database(file);
    // @keyv/sqlite 4's table, and a generation record as keyv serialized it there.
    earlier.exec(
      "CREATE TABLE IF NOT EXISTS imagine_votes(key VARCHAR(255) PRIMARY KEY, value TEXT )",
    );
    earlier
      .prepare("INSERT INTO imagine_votes (key, value) VALUES (?, ?)")
      .run(`imagine:gen/${generation.id}`, JSON.stringify({ value: generation, expires: null }));
    earlier.close();
    const store = await openVoteStore(`sqlite://${file}`, { dataDir });
    expect(await store.getGeneration(generation.id)).toEqual(generation);
    await store.close();
  });

  it("checkpoints the WAL into the database file on its own thread, not inside a commit", async () => {
    const file = join(dataDir, "checkpoints.sqlite");
    const store = new SqliteKeyvStore({ file, table: "kv", busyTimeoutMs: 1000 });
    store.querySync("PRAGMA journal_mode = WAL");
    store.checkpointInBackground();
    // SQLite's own checkpoint inside a commit is off...
    expect(store.querySync("PRAGMA wal_autocheckpoint")).toEqual([{ wal_autocheckpoint: 0 }]);
    // ...and the thread's has copied every commit before it into the file itself: a copy of
    // the file without its WAL holds them.
    const checkpointed = once(store, "checkpoint");
    for (let i = 0; i < 200; i++) await store.set(`key${String(i).padStart(3, "0")}`, `value${i}`);
    await checkpointed;
    const copy = join(dataDir, "checkpoints-copy.sqlite");
    copyFileSync(file, copy);
    const alone = new Database(copy, { readonly: true });
    expect(alone.prepare("SELECT count(*) AS n FROM kv").get()).toEqual({ n: 200 });
    alone.close();
    store.close();
  });

  it("keeps two namespaces in one file apart", async () => {
    const file = join(dataDir, "shared.sqlite");
    const a = await openVoteStore(`sqlite://${file}?namespace=a`, { dataDir });
    const b = await openVoteStore(`sqlite://${file}?namespace=b`, { dataDir });
    const generation = sampleGeneration();
    await a.saveGeneration(generation);
    expect(await b.getGeneration(generation.id)).toBeUndefined();
    await a.close();
    await b.close();
  });

  it("expires claims by the store's clock and deletes expired ones now and then", async () => {
    const file = join(dataDir, "claims.sqlite");
    let now = Date.parse("2026-01-01T00:00:00Z");
    const store = await openVoteStore(`sqlite://${file}`, { dataDir, now: () => new Date(now) });
    await claimThroughExpiry(store, (ms) => {
      now += ms;
    });
    await store.close();

    const raw = new Database(file, { readonly: true });
    const rows = raw
      .prepare("SELECT key FROM imagine_votes WHERE key LIKE 'imagine:claim/%' ORDER BY key")
      .all() as { key: string }[];
    raw.close();
    // "old" and the first 251 events expired before the 256th claim; "long" and the last stay.
    expect(rows.map((row) => row.key)).toEqual(["imagine:claim/event-251", "imagine:claim/long"]);
  });
});

describe("requester ids", () => {
  it("reads records stored with a bare Discord requester id as discord:<id>, leaves qualified ones", async () => {
    const file = join(dataDir, "requesters.sqlite");
    const before = await openVoteStore(`sqlite://${file}`, { dataDir });
    // How the Discord adapter stored requesters before ids were qualified everywhere.
    const old = sampleGeneration({ requester: "123456789012345678" });
    const slack = sampleGeneration({ platform: "slack", requester: "slack:U0ALICE" });
    const study = sampleGeneration({ requester: "study:s1" });
    for (const generation of [old, slack, study]) await before.saveGeneration(generation);
    await before.close();

    const after = await openVoteStore(`sqlite://${file}`, { dataDir });
    expect((await after.getGeneration(old.id))?.requester).toBe("discord:123456789012345678");
    expect((await after.getGeneration(slack.id))?.requester).toBe("slack:U0ALICE");
    expect((await after.getGeneration(study.id))?.requester).toBe("study:s1");
    const listed = new Map<string, string>();
    for await (const generation of after.generations()) {
      listed.set(generation.id, generation.requester);
    }
    expect(listed.get(old.id)).toBe("discord:123456789012345678");
    await after.setMessageRef(old.id, "c/m");
    expect((await after.findGenerationByMessage("discord", "c/m"))?.requester).toBe(
      "discord:123456789012345678",
    );
    await after.close();
  });
});
