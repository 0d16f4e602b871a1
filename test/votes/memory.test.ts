import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/core/errors.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { openMemoryKv } from "../../src/core/votes/kv.js";
import { voteStoreContract } from "./contract.js";
import { kvCommitContract } from "./kv-commit.js";

voteStoreContract("memory", () => openVoteStore("memory://", { dataDir: "/nonexistent" }), {
  persistent: false,
});

kvCommitContract("memory", async () => openMemoryKv());

describe("openVoteStore URLs", () => {
  it.each([
    ["votes.sqlite", /it is not a URL/],
    ["mysql://localhost/votes", /"mysql:\/\/" is not a supported backend/],
    ["sqlite://", /SQLite file is missing/],
    ["sqlite://votes.sqlite?table=drop;table", /table "drop;table"/],
    ["sqlite://votes.sqlite?synchronous=off", /synchronous "off" must be normal/],
    ["redis://localhost:6379?namespace=a b", /namespace "a b"/],
    ["postgresql://user:secret@[bad", /does not parse/],
    ["", /it is not a URL/],
  ])("refuses %j naming the setting and the valid forms", async (url, why) => {
    const error = await openVoteStore(url, { dataDir: "/tmp" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(why);
    expect(message).toMatch(/IMAGINE_VOTE_STORE/);
    expect(message).toMatch(/votes\.storeUrl/);
    expect(message).toMatch(/sqlite:\/\/votes\.sqlite/);
    expect(message).toMatch(/redis:\/\//);
    expect(message).toMatch(/postgresql:\/\//);
    expect(message).not.toMatch(/secret/);
  });

  it("names an unreachable Redis or PostgreSQL without its password", async () => {
    for (const url of [
      "redis://:hunter2@127.0.0.1:1",
      "postgresql://user:hunter2@127.0.0.1:1/db",
    ]) {
      const error = await openVoteStore(url, { dataDir: "/tmp" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/IMAGINE_VOTE_STORE/);
      expect((error as Error).message).toMatch(/127\.0\.0\.1:1/);
      expect((error as Error).message).not.toMatch(/hunter2/);
    }
  });
});
