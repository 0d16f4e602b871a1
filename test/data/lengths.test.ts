import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { captionLengths, LengthHistogram } from "../../src/core/data/lengths.js";
import { encodeText } from "../../src/core/prompt/tokenizer.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-lengths-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("LengthHistogram", () => {
  it("gives exact mean, median, p90, min and max", () => {
    const h = new LengthHistogram();
    for (const n of [5, 1, 3, 2, 4, 10, 7, 6, 9, 8]) h.add(n);
    expect(h.stats()).toEqual({ count: 10, mean: 5.5, median: 5.5, p90: 9, min: 1, max: 10 });
    h.add(11);
    expect(h.stats()).toMatchObject({ count: 11, median: 6, p90: 10, max: 11 });
    expect(new LengthHistogram().stats()).toEqual({
      count: 0,
      mean: 0,
      median: 0,
      p90: 0,
      min: 0,
      max: 0,
    });
  });
});

describe("captionLengths", () => {
  // "word" is one GPT-2 token and " word" another, so caption i (i words) is i tokens long.
  const caption = (words: number) => Array.from({ length: words }, () => "word").join(" ");

  it("measures cleaned captions with GPT-2, skipping empty and malformed rows", async () => {
    expect(encodeText(caption(7))).toHaveLength(7);
    const path = join(dir, "c.jsonl");
    const lines = [];
    for (let i = 1; i <= 20; i++) lines.push(JSON.stringify({ TEXT: `<i>${caption(i)}</i>` }));
    lines.splice(3, 0, JSON.stringify({ TEXT: " \t" }), "{broken");
    await writeFile(path, lines.join("\n"));
    for (const workers of [1, 2]) {
      const report = await captionLengths({ inputs: [path], workers, batchSize: 4 });
      expect(report).toMatchObject({
        count: 20,
        mean: 10.5,
        median: 10.5,
        p90: 18,
        min: 1,
        max: 20,
        read: 22,
        dropped: { empty: 1, malformed: 1 },
        limit: null,
      });
    }
  });

  it("stops at the limit", async () => {
    const path = join(dir, "c.txt");
    await writeFile(path, Array.from({ length: 50 }, (_, i) => caption(i + 1)).join("\n"));
    const report = await captionLengths({ inputs: [path], limit: 5, workers: 1, batchSize: 3 });
    expect(report).toMatchObject({ count: 5, mean: 3, median: 3, max: 5, read: 5 });
  });
});
