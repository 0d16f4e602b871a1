import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readTokenFile, TokenFileWriter } from "../../src/core/data/tokenFile.js";
import { normaliseCaption, tokenizeCaptions } from "../../src/core/data/tokenize.js";
import { END_OF_TEXT_ID, encodeTag, encodeText } from "../../src/core/prompt/tokenizer.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-tokens-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("token files", () => {
  it("round-trip ids and header, data 8-byte aligned", async () => {
    const path = join(dir, "t.tokens");
    const writer = await TokenFileWriter.create(path, { tags: null, source: "test" });
    await writer.appendDocument([1, 2, 50256], 3);
    await writer.appendDocument([65535 % 50257, 7], 1);
    const header = await writer.close();
    expect(header).toMatchObject({ tokens: 5, documents: 2, meanCaptionTokens: 2, tags: null });
    const bytes = await readFile(path);
    expect(bytes.toString("ascii", 0, 4)).toBe("IMTK");
    expect((8 + bytes.readUInt32LE(4)) % 8).toBe(0);
    const read = await readTokenFile(path);
    expect(Array.from(read.ids)).toEqual([1, 2, 50256, 65535 % 50257, 7]);
    expect(read.header).toEqual(header);
  });

  it("streams more tokens than one write buffer", async () => {
    const path = join(dir, "big.tokens");
    const writer = await TokenFileWriter.create(path, { tags: null, source: "test" });
    const doc = Array.from({ length: 1000 }, (_, i) => i);
    for (let i = 0; i < 100; i++) await writer.appendDocument(doc, 1000);
    await writer.close();
    const read = await readTokenFile(path);
    expect(read.ids.length).toBe(100_000);
    expect(read.ids[99_999]).toBe(999);
  });

  it("rejects ids outside the vocabulary and files that are not token files", async () => {
    const writer = await TokenFileWriter.create(join(dir, "bad.tokens"), {
      tags: null,
      source: "x",
    });
    await expect(writer.appendDocument([50257], 1)).rejects.toThrow(/outside GPT-2's vocabulary/);
    await writer.close();
    await writeFile(join(dir, "not.tokens"), "hello world");
    await expect(readTokenFile(join(dir, "not.tokens"))).rejects.toThrow(/magic/);
  });
});

describe("tokenizeCaptions", () => {
  it("cleans, tags, splits reproducibly and reports", async () => {
    const input = join(dir, "captions.txt");
    const lines = Array.from({ length: 200 }, (_, i) => `a red fox number ${i}\t in  snow`);
    lines.splice(5, 0, "", "   ");
    await writeFile(input, lines.join("\n"));
    const tags = { start: "<|startoftext|>", end: "<|endoftext|>" };
    const run = (out: string) =>
      tokenizeCaptions({
        inputs: [input],
        outDir: join(dir, out),
        tags,
        evalFraction: 0.1,
        seed: 3,
      });
    const report = await run("a");
    expect(report).toMatchObject({ read: 202, kept: 200, dropped: { empty: 2 } });
    expect(report.train.documents + report.eval.documents).toBe(200);
    expect(report.eval.documents).toBeGreaterThan(5);
    expect(report.eval.documents).toBeLessThan(40);

    const train = await readTokenFile(join(dir, "a", "train.tokens"));
    const first = [
      ...encodeTag(tags.start),
      ...encodeText(normaliseCaption(lines[0] as string)),
      END_OF_TEXT_ID,
    ];
    expect(Array.from(train.ids.subarray(0, first.length))).toEqual(first);
    expect(train.header.tags).toEqual(tags);

    const again = await run("b");
    const trainAgain = await readTokenFile(join(dir, "b", "train.tokens"));
    expect(again.eval.documents).toBe(report.eval.documents);
    expect(Array.from(trainAgain.ids)).toEqual(Array.from(train.ids));
  });

  it("stops at the limit", async () => {
    const input = join(dir, "captions.txt");
    await writeFile(input, Array.from({ length: 50 }, (_, i) => `caption ${i}`).join("\n"));
    const report = await tokenizeCaptions({
      inputs: [input],
      outDir: join(dir, "out"),
      tags: null,
      evalFraction: 0,
      seed: 1,
      limit: 10,
    });
    expect(report.kept).toBe(10);
    expect(report.train.documents).toBe(10);
  });
});

describe("normaliseCaption", () => {
  it("collapses whitespace and control characters", () => {
    expect(normaliseCaption("  a\tb\u0000c\r\n d  ")).toBe("a b c d");
  });
});
