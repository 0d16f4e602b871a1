import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CaptionRecord,
  formatFromPath,
  openCaptionSource,
  type ReaderOptions,
} from "../../src/core/data/readers.js";
import { UserError } from "../../src/core/errors.js";
import { writeParquet } from "./parquetFixture.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-readers-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(path: string, options?: ReaderOptions): Promise<CaptionRecord[]> {
  const source = await openCaptionSource(path, options);
  const records: CaptionRecord[] = [];
  for await (const record of source.records) records.push(record);
  return records;
}

const texts = (records: CaptionRecord[]) =>
  records.filter((r) => r.text !== undefined).map((r) => [r.row, r.text]);
const bad = (records: CaptionRecord[]) =>
  records.flatMap((r) => (r.text === undefined ? [[r.row, r.malformed]] : []));

describe("parquet", () => {
  const captions = Array.from({ length: 25 }, (_, i) => `caption ${i + 1} &amp; more`);

  async function fixture(): Promise<string> {
    const path = join(dir, "laion.parquet");
    const text: (string | null)[] = [...captions];
    text[3] = null;
    await writeFile(
      path,
      writeParquet(
        [
          { name: "URL", type: "string", values: captions.map((_, i) => `https://x/${i}.jpg`) },
          { name: "TEXT", type: "string", values: text },
          { name: "similarity", type: "int32", values: captions.map((_, i) => i) },
        ],
        10, // three row groups: 10, 10, 5
      ),
    );
    return path;
  }

  it("the fixture writer makes files hyparquet reads back", async () => {
    const rows = await parquetReadObjects({ file: await asyncBufferFromFile(await fixture()) });
    expect(rows).toHaveLength(25);
    expect(rows[0]).toEqual({ URL: "https://x/0.jpg", TEXT: captions[0], similarity: 0 });
    expect(rows[3]?.TEXT).toBeNull();
  });

  it("reads TEXT row group by row group with 1-based rows; a null is malformed", async () => {
    const path = await fixture();
    const source = await openCaptionSource(path);
    expect(source).toMatchObject({ format: "parquet", column: "TEXT", totalRows: 25 });
    const records: CaptionRecord[] = [];
    for await (const record of source.records) records.push(record);
    expect(source.fraction()).toBe(1);
    expect(records).toHaveLength(25);
    expect(texts(records)[0]).toEqual([1, captions[0]]);
    expect(texts(records).at(-1)).toEqual([25, captions[24]]);
    expect(bad(records)).toEqual([[4, "TEXT is null"]]);
  });

  it("--column picks another column; a non-string value is malformed", async () => {
    const path = await fixture();
    expect(texts(await readAll(path, { column: "URL" }))[1]).toEqual([2, "https://x/1.jpg"]);
    const numbers = await readAll(path, { column: "similarity" });
    expect(bad(numbers)[0]).toEqual([1, "similarity is a number, not a string"]);
  });

  it("a missing column is a UserError naming the file, the column and the columns", async () => {
    const path = await fixture();
    const error = await openCaptionSource(path, { column: "caption_text" }).catch((e) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain(path);
    expect(error.message).toContain('"caption_text"');
    expect(error.message).toContain('"URL", "TEXT", "similarity"');
  });

  it("a file that is not parquet is a UserError", async () => {
    const path = join(dir, "fake.parquet");
    await writeFile(path, "not parquet at all");
    await expect(openCaptionSource(path)).rejects.toThrow(/not a readable parquet file/);
  });
});

describe("CSV and TSV", () => {
  it("reads the named column with quotes, commas and newlines; ragged rows are malformed", async () => {
    const path = join(dir, "c.csv");
    await writeFile(
      path,
      [
        "url,caption,width",
        'http://a,"a red fox, in snow",100',
        'http://b,"two\nlines",200',
        "http://c,ragged",
        'http://d,"say ""hi""",300',
        "",
        "http://e,last one,400",
      ].join("\r\n"),
    );
    const records = await readAll(path);
    expect(texts(records)).toEqual([
      [1, "a red fox, in snow"],
      [2, "two\nlines"],
      [4, 'say "hi"'],
      [5, "last one"],
    ]);
    expect(bad(records)).toEqual([[3, "line 5: 2 fields, the header has 3"]]);
  });

  it("prefers TEXT, matches caption case-insensitively, honours --column", async () => {
    const path = join(dir, "c.csv");
    await writeFile(path, "Caption,TEXT\nfrom caption,from text\n");
    expect(texts(await readAll(path))).toEqual([[1, "from text"]]);
    expect(texts(await readAll(path, { column: "Caption" }))).toEqual([[1, "from caption"]]);
    const other = join(dir, "d.csv");
    await writeFile(other, "\ufeffid,Caption\n1,hello\n");
    expect(texts(await readAll(other))).toEqual([[1, "hello"]]);
  });

  it("a missing column names the file, the column and the header", async () => {
    const path = join(dir, "c.csv");
    await writeFile(path, "url,alt\nhttp://a,b\n");
    await expect(readAll(path)).rejects.toThrow(
      `${path} has no column TEXT or caption (its columns: "url", "alt"); choose one with --column`,
    );
    await expect(readAll(path, { column: "desc" })).rejects.toThrow(/no column "desc"/);
  });

  it("TSV: tab-separated, quotes are plain characters", async () => {
    const path = join(dir, "t.tsv");
    await writeFile(path, 'TEXT\turl\nthe "best" fox\thttp://a\nplain\thttp://b\n');
    const records = await readAll(path);
    expect(texts(records)).toEqual([
      [1, 'the "best" fox'],
      [2, "plain"],
    ]);
  });

  it("an unclosed quote is reported, not thrown", async () => {
    const path = join(dir, "q.csv");
    await writeFile(path, 'TEXT,n\nfine,1\n"never closed,2\n');
    const records = await readAll(path);
    expect(texts(records)).toEqual([[1, "fine"]]);
    expect(bad(records)).toHaveLength(1);
  });
});

describe("JSONL", () => {
  it("reads the field; bad JSON, missing field, non-strings and non-objects are malformed", async () => {
    const path = join(dir, "c.jsonl");
    await writeFile(
      path,
      [
        JSON.stringify({ caption: "first", url: "x" }),
        "{not json",
        JSON.stringify({ url: "no caption" }),
        JSON.stringify({ caption: 42 }),
        JSON.stringify({ caption: null }),
        "[1,2]",
        "",
        JSON.stringify({ caption: "last \u00e9" }),
      ].join("\n"),
    );
    const records = await readAll(path);
    expect(texts(records)).toEqual([
      [1, "first"],
      [8, "last \u00e9"],
    ]);
    const reasons = bad(records);
    expect(reasons.map(([row]) => row)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(reasons[0]?.[1]).toMatch(/^invalid JSON/);
    expect(reasons.slice(1).map(([, reason]) => reason)).toEqual([
      'no field "caption"',
      '"caption" is a number, not a string',
      '"caption" is null, not a string',
      "not a JSON object but an array",
      "blank line",
    ]);
  });

  it("a first object without the field is a clear error", async () => {
    const path = join(dir, "c.ndjson");
    await writeFile(path, `${JSON.stringify({ alt: "x", url: "y" })}\n`);
    await expect(readAll(path)).rejects.toThrow(
      /has no field TEXT or caption \(its fields: "alt", "url"\)/,
    );
    await expect(readAll(path, { column: "text" })).rejects.toThrow(/no field "text"/);
  });
});

describe("plain text and format choice", () => {
  it("one caption per line, CRLF and a BOM handled, rows are line numbers", async () => {
    const path = join(dir, "c.txt");
    await writeFile(path, "\ufefffirst\r\n\r\nthird\n");
    expect(texts(await readAll(path))).toEqual([
      [1, "first"],
      [2, ""],
      [3, "third"],
    ]);
  });

  it("chooses by extension; --format overrides; unknown extensions ask for --format", async () => {
    expect(formatFromPath("a.PARQUET")).toBe("parquet");
    expect(formatFromPath("a.ndjson")).toBe("jsonl");
    expect(formatFromPath("a.tsv")).toBe("tsv");
    expect(formatFromPath("a.dat")).toBeUndefined();
    const path = join(dir, "captions.dat");
    await writeFile(path, "TEXT\nhello\n");
    await expect(openCaptionSource(path)).rejects.toThrow(
      /--format parquet\|csv\|tsv\|jsonl\|text/,
    );
    expect(texts(await readAll(path, { format: "csv" }))).toEqual([[1, "hello"]]);
    expect(texts(await readAll(path, { format: "text" }))).toEqual([
      [1, "TEXT"],
      [2, "hello"],
    ]);
    await expect(openCaptionSource(join(dir, "missing.txt"))).rejects.toThrow(/no such file/);
  });

  it("binary content in a text format is refused, naming the file; non-UTF-8 text too", async () => {
    const png = join(dir, "photo.txt");
    await writeFile(
      png,
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
    );
    await expect(openCaptionSource(png)).rejects.toThrow(UserError);
    await expect(openCaptionSource(png)).rejects.toThrow(/photo\.txt: this is a binary file/);
    const parquet = join(dir, "laion.csv");
    await writeFile(parquet, Buffer.concat([Buffer.from("PAR1"), Buffer.alloc(16)]));
    await expect(openCaptionSource(parquet)).rejects.toThrow(/it is a parquet file/);
    const latin1 = join(dir, "old.jsonl");
    await writeFile(latin1, Buffer.from('{"caption":"caf\xe9"}\n', "latin1"));
    await expect(openCaptionSource(latin1)).rejects.toThrow(/old\.jsonl: not UTF-8 text/);
    // A multi-byte character cut at the end of the 64 KiB sample is still text.
    const long = join(dir, "long.txt");
    await writeFile(long, `${"a".repeat(64 * 1024 - 1)}é and more\n`);
    expect(await readAll(long)).toHaveLength(1);
  });

  it("stopping early closes the file", async () => {
    const path = join(dir, "many.txt");
    await writeFile(path, Array.from({ length: 10_000 }, (_, i) => `line ${i}`).join("\n"));
    const source = await openCaptionSource(path);
    let n = 0;
    for await (const _ of source.records) if (++n === 3) break;
    expect(n).toBe(3);
  });
});
