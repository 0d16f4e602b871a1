import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cleanCaption } from "../../src/core/data/clean.js";
import {
  type FilterSource,
  type PrepareOptions,
  prepareCaptions,
  splitDraw,
} from "../../src/core/data/prepare.js";
import { readTokenFile } from "../../src/core/data/tokenFile.js";
import { UserError } from "../../src/core/errors.js";
import { END_OF_TEXT_ID, encodeTag, encodeText } from "../../src/core/prompt/tokenizer.js";
import { writeParquet } from "./parquetFixture.js";

/** The three-word test double (fixtures/filterDouble.ts), loaded by each worker. */
const DOUBLE: FilterSource = {
  module: new URL("./fixtures/filterDouble.ts", import.meta.url).href,
  export: "createFilter",
};
const TAGS = { start: "<|startoftext|>", end: "<|endoftext|>" };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-prepare-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lines = async (path: string) => {
  const text = await readFile(path, "utf8");
  return text === "" ? [] : text.slice(0, -1).split("\n");
};

function run(overrides: Partial<PrepareOptions> & Pick<PrepareOptions, "inputs">) {
  return prepareCaptions({
    outDir: join(dir, "out"),
    tags: TAGS,
    evalFraction: 0.1,
    seed: 1,
    filter: DOUBLE,
    workers: 1,
    ...overrides,
  });
}

/** Four inputs, one per format, with empty, explicit and malformed rows among them. */
async function mixedInputs(): Promise<{ inputs: string[]; expected: string[] }> {
  const parquet = join(dir, "part-0.parquet");
  await writeFile(
    parquet,
    writeParquet(
      [
        {
          name: "TEXT",
          type: "string",
          values: ["A &amp; B <b>bold</b>", null, "a nasty caption", "  ", "Parquet last"],
        },
      ],
      2,
    ),
  );
  const csv = join(dir, "b.csv");
  await writeFile(csv, 'url,caption\nx,"csv, one"\ny\nz,CSV BADWORD here\nw,csv two\n');
  const jsonl = join(dir, "c.jsonl");
  await writeFile(jsonl, '{"TEXT":"json\\tone"}\n{oops\n{"TEXT":"json two"}\n');
  const text = join(dir, "d.txt");
  await writeFile(text, "text one\n\nexplicitterm\ntext two &#x263A;\n");
  return {
    inputs: [parquet, csv, jsonl, text],
    expected: [
      "A & B bold",
      "Parquet last",
      "csv, one",
      "csv two",
      "json one",
      "json two",
      "text one",
      "text two ☺",
    ],
  };
}

describe("prepareCaptions", () => {
  it("reads every format in order, cleans, drops explicit/empty/malformed, reports", async () => {
    const { inputs, expected } = await mixedInputs();
    const report = await run({ inputs, evalFraction: 0.3, seed: 7 });
    const out = join(dir, "out");

    expect(report).toMatchObject({
      read: 16,
      kept: 8,
      dropped: { empty: 2, explicit: 3, malformed: 3 },
      limit: null,
      limitReached: false,
      evalFraction: 0.3,
      seed: 7,
      tags: TAGS,
      filter: "createFilter from filterDouble.ts",
      workers: 1,
    });
    expect(report.inputs).toEqual([
      { path: inputs[0], format: "parquet", column: "TEXT", rows: 5 },
      { path: inputs[1], format: "csv", column: "caption", rows: 4 },
      { path: inputs[2], format: "jsonl", column: "TEXT", rows: 3 },
      { path: inputs[3], format: "text", column: null, rows: 4 },
    ]);
    expect(report.malformed).toEqual([
      { input: inputs[0], row: 2, reason: "TEXT is null" },
      { input: inputs[1], row: 2, reason: "line 3: 1 fields, the header has 2" },
      { input: inputs[2], row: 2, reason: expect.stringMatching(/^invalid JSON/) },
    ]);

    // The split follows splitDraw(seed, kept index); text files hold the cleaned captions.
    const evalIdx = expected.map((_, i) => i).filter((i) => splitDraw(7, i) < 0.3);
    const trainIdx = expected.map((_, i) => i).filter((i) => splitDraw(7, i) >= 0.3);
    expect(evalIdx.length).toBeGreaterThan(0);
    expect(trainIdx.length).toBeGreaterThan(0);
    expect(await lines(join(out, "train.txt"))).toEqual(trainIdx.map((i) => expected[i]));
    expect(await lines(join(out, "eval.txt"))).toEqual(evalIdx.map((i) => expected[i]));

    // Tagged documents: start tag as text + caption + <|endoftext|> (training/README.md).
    const doc = (caption: string) => [
      ...encodeTag(TAGS.start),
      ...encodeText(caption),
      END_OF_TEXT_ID,
    ];
    const train = await readTokenFile(join(out, "train.tokens"));
    expect(Array.from(train.ids)).toEqual(trainIdx.flatMap((i) => doc(expected[i] as string)));
    const meanTrain =
      trainIdx.reduce((sum, i) => sum + encodeText(expected[i] as string).length, 0) /
      trainIdx.length;
    expect(train.header).toMatchObject({
      documents: trainIdx.length,
      meanCaptionTokens: meanTrain,
      tags: TAGS,
      source: "part-0.parquet, b.csv, c.jsonl, d.txt",
    });
    expect(report.train).toEqual({
      captions: trainIdx.length,
      tokens: train.ids.length,
      meanCaptionTokens: meanTrain,
    });
    const evaluation = await readTokenFile(join(out, "eval.tokens"));
    expect(report.eval.captions).toBe(evaluation.header.documents);

    const written = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
    expect(written).toEqual(JSON.parse(JSON.stringify(report)));
    expect(written.durationSeconds).toBeGreaterThan(0);
    expect(written.captionsPerSecond).toBeGreaterThan(0);
  });

  it("writes untagged captions back to back, with no separator", async () => {
    const { inputs, expected } = await mixedInputs();
    const report = await run({ inputs, tags: null, evalFraction: 0 });
    expect(report.kept).toBe(8);
    const train = await readTokenFile(join(dir, "out", "train.tokens"));
    expect(train.header.tags).toBeNull();
    expect(Array.from(train.ids)).toEqual(expected.flatMap((c) => encodeText(c)));
    expect((await readTokenFile(join(dir, "out", "eval.tokens"))).header.documents).toBe(0);
  });

  it("keeps the first N survivors and counts rows only up to the last one kept", async () => {
    const { inputs, expected } = await mixedInputs();
    const report = await run({ inputs, limit: 3, evalFraction: 0 });
    // Survivor 3 is "csv, one", row 1 of b.csv: 5 parquet rows + 1 CSV row read.
    expect(report).toMatchObject({ kept: 3, read: 6, limit: 3, limitReached: true });
    expect(report.inputs.map((i) => i.rows)).toEqual([5, 1, 0, 0]);
    expect(report.dropped).toEqual({ empty: 1, explicit: 1, malformed: 1 });
    expect(await lines(join(dir, "out", "train.txt"))).toEqual(expected.slice(0, 3));
  });

  it("gives identical files for 1 or 2 workers and any batch size", async () => {
    const path = join(dir, "many.txt");
    const captions = Array.from({ length: 3000 }, (_, i) =>
      i % 97 === 0
        ? `a nasty one ${i}`
        : i % 89 === 0
          ? "   "
          : `caption &quot;${i}&quot; of <i>many</i>`,
    );
    await writeFile(path, captions.join("\n"));
    const outputs: Record<string, Buffer>[] = [];
    for (const [workers, batchSize] of [
      [1, 2000],
      [2, 2000],
      [2, 37],
    ] as const) {
      const outDir = join(dir, `w${workers}-b${batchSize}`);
      const report = await run({
        inputs: [path],
        outDir,
        workers,
        batchSize,
        limit: 2900,
        seed: 5,
      });
      expect(report).toMatchObject({ kept: 2900, workers, limitReached: true });
      const files: Record<string, Buffer> = {};
      for (const name of ["train.tokens", "eval.tokens", "train.txt", "eval.txt"]) {
        files[name] = await readFile(join(outDir, name));
      }
      const {
        durationSeconds,
        captionsPerSecond,
        rowsPerSecond,
        outDir: _o,
        files: _f,
        workers: _w,
        ...rest
      } = report;
      files.report = Buffer.from(JSON.stringify(rest));
      outputs.push(files);
    }
    expect(outputs[1]).toEqual(outputs[0]);
    expect(outputs[2]).toEqual(outputs[0]);
    const evalShare = (await lines(join(dir, "w1-b2000", "eval.txt"))).length / 2900;
    expect(evalShare).toBeGreaterThan(0.07);
    expect(evalShare).toBeLessThan(0.13);
  });

  it("fails before writing anything when an input lacks the column", async () => {
    const { inputs } = await mixedInputs();
    const error = await run({ inputs, column: "alt" }).catch((e) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(/part-0\.parquet has no column "alt" \(its columns: "TEXT"\)/);
    expect(existsSync(join(dir, "out"))).toBe(false);
    // CSV headers and the first JSON object are checked up front too.
    for (const input of [inputs[1], inputs[2]] as string[]) {
      await expect(run({ inputs: [inputs[3] as string, input], column: "alt" })).rejects.toThrow(
        /has no (column|field) "alt"/,
      );
    }
    expect(existsSync(join(dir, "out"))).toBe(false);
  });

  it("says when the filter cannot be loaded", async () => {
    const path = join(dir, "a.txt");
    await writeFile(path, "hello\n");
    for (const workers of [1, 2]) {
      await expect(
        run({ inputs: [path], workers, filter: { module: DOUBLE.module, export: "nope" } }),
      ).rejects.toThrow(/cannot load the explicit-text filter: .* does not export a function nope/);
    }
  });

  it("cleans exactly as cleanCaption does", async () => {
    const path = join(dir, "a.jsonl");
    const raw = ["x &amp;amp; y", "<p>para</p>\u0000", "tab\tand\nnewline"];
    await writeFile(path, raw.map((text) => JSON.stringify({ caption: text })).join("\n"));
    await run({ inputs: [path], evalFraction: 0 });
    expect(await lines(join(dir, "out", "train.txt"))).toEqual(raw.map(cleanCaption));
  });
});

describe("splitDraw", () => {
  it("is uniform-ish, deterministic and seed-dependent", () => {
    const n = 100_000;
    let held = 0;
    for (let i = 0; i < n; i++) if (splitDraw(1, i) < 0.1) held++;
    expect(held / n).toBeGreaterThan(0.095);
    expect(held / n).toBeLessThan(0.105);
    expect(splitDraw(1, 12345)).toBe(splitDraw(1, 12345));
    const a = Array.from({ length: 50 }, (_, i) => splitDraw(1, i) < 0.5);
    const b = Array.from({ length: 50 }, (_, i) => splitDraw(2, i) < 0.5);
    expect(a).not.toEqual(b);
  });
});
