import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openVoteStore } from "../../src/core/votes/index.js";
import { sampleGeneration, voteStoreContract } from "./contract.js";

const dataDir = mkdtempSync(join(tmpdir(), "imagine-votes-sqlite-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

voteStoreContract("sqlite", (space) => openVoteStore(`sqlite://${space}.sqlite`, { dataDir }), {
  persistent: true,
});

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
});
