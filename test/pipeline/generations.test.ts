import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  GENERATIONS_FILE,
  JsonlGenerationStore,
  MemoryGenerationStore,
} from "../../src/core/generations.js";
import type { Generation } from "../../src/core/types.js";

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

function generation(n: number): Generation {
  return {
    id: `id-${n}`,
    createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
    platform: "discord",
    requester: `user${n % 3}`,
    subject: `a fox ${"é".repeat(n)}`,
    arm: "ft-tags",
    prompt: `a fox ${n}, oil painting\nwith "quotes"`,
    promptComplete: true,
    seed: n,
    image: {
      backend: "fake",
      model: "fake/sd",
      width: 64,
      height: 64,
      steps: 20,
      guidance: 7,
      path: `images/id-${n}.png`,
    },
    timings: { queuedMs: 0, promptMs: 1, renderMs: 2, totalMs: 3 },
  };
}

describe("JsonlGenerationStore", () => {
  it("creates the data directory and appends one JSON line per record, in call order", async () => {
    root = mkdtempSync(join(tmpdir(), "imagine-generations-"));
    const dataDir = join(root, "nested", "data");
    const store = new JsonlGenerationStore(dataDir);
    await Promise.all(Array.from({ length: 200 }, (_, n) => store.saveGeneration(generation(n))));
    const text = readFileSync(join(dataDir, GENERATIONS_FILE), "utf8");
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.trimEnd().split("\n");
    expect(lines).toHaveLength(200);
    expect(lines.map((line) => JSON.parse(line))).toEqual(
      Array.from({ length: 200 }, (_, n) => generation(n)),
    );
    // A second store on the same directory appends.
    await new JsonlGenerationStore(dataDir).saveGeneration(generation(200));
    expect(readFileSync(store.file, "utf8").trimEnd().split("\n")).toHaveLength(201);
  });

  it("rejects when the record cannot be written", async () => {
    root = mkdtempSync(join(tmpdir(), "imagine-generations-"));
    await new JsonlGenerationStore(root).saveGeneration(generation(0));
    // The data directory would be inside a file: mkdir fails, every time, with a rejection.
    const bad = new JsonlGenerationStore(join(root, GENERATIONS_FILE, "sub"));
    await expect(bad.saveGeneration(generation(1))).rejects.toThrow(/ENOTDIR|EEXIST/);
    await expect(bad.saveGeneration(generation(2))).rejects.toThrow(/ENOTDIR|EEXIST/);
  });
});

describe("MemoryGenerationStore", () => {
  it("keeps copies in order", async () => {
    const store = new MemoryGenerationStore();
    const record = generation(1);
    await store.saveGeneration(record);
    record.subject = "changed";
    expect(store.generations.map((g) => g.subject)).toEqual(["a fox é"]);
  });
});
