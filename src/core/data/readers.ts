/**
 * Caption readers: one streaming async iterable per input file, whatever its format.
 *
 * Every record carries its row number in the file (1-based data rows: the CSV/TSV header is not
 * a row; for text and JSONL the row is the line number). A row that cannot give a caption (bad
 * JSON, missing field, a value that is not a string, a ragged CSV row, a null) is yielded as a
 * malformed record with a reason, never thrown, so one bad line does not end a 10M-row run.
 * A file that has no such column at all is a UserError naming the file, the column asked for
 * and the columns it does have.
 *
 * Memory stays flat: text, JSONL and CSV are read as streams; parquet is read one row group at a
 * time, only the caption column.
 */
import { isUtf8 } from "node:buffer";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseCsv } from "csv-parse";
import { parse as parseCsvSync } from "csv-parse/sync";
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema } from "hyparquet";
import { UserError } from "../errors.js";

export const CAPTION_FORMATS = ["parquet", "csv", "tsv", "jsonl", "text"] as const;
export type CaptionFormat = (typeof CAPTION_FORMATS)[number];

/** Columns tried, in order, when no column is named (LAION publishes `TEXT`). */
export const DEFAULT_CAPTION_COLUMNS = ["TEXT", "caption"] as const;

export type CaptionRecord =
  | { row: number; text: string }
  | { row: number; text?: undefined; malformed: string };

export interface CaptionSource {
  path: string;
  format: CaptionFormat;
  /** The column or field captions are read from; null for plain text. */
  column: string | null;
  /** File size in bytes. */
  bytes: number;
  /** Rows in the file when the format says so up front (parquet), else undefined. */
  totalRows?: number;
  /** Share of the file consumed so far, 0…1, for progress estimates. */
  fraction(): number;
  records: AsyncIterable<CaptionRecord>;
}

export interface ReaderOptions {
  /** Format override; otherwise chosen by extension. */
  format?: CaptionFormat;
  /** Column (CSV/TSV/parquet) or field (JSONL); default: the first of TEXT, caption found. */
  column?: string;
}

/** The format a file's extension implies, or undefined. */
export function formatFromPath(path: string): CaptionFormat | undefined {
  switch (extname(path).toLowerCase()) {
    case ".parquet":
      return "parquet";
    case ".csv":
      return "csv";
    case ".tsv":
    case ".tab":
      return "tsv";
    case ".jsonl":
    case ".ndjson":
      return "jsonl";
    case ".txt":
    case ".text":
      return "text";
    default:
      return undefined;
  }
}

/**
 * Opens one caption file. Reads only what it needs to validate (the parquet footer, the CSV
 * header, the first JSON line happen lazily in `records`, except parquet's footer, read here).
 */
export async function openCaptionSource(
  path: string,
  options: ReaderOptions = {},
): Promise<CaptionSource> {
  const format = options.format ?? formatFromPath(path);
  if (format === undefined) {
    throw new UserError(
      "USAGE",
      `${path}: cannot tell the format from the extension "${extname(path)}"; ` +
        `pass --format ${CAPTION_FORMATS.join("|")}`,
    );
  }
  let bytes: number;
  try {
    bytes = (await stat(path)).size;
  } catch {
    throw new UserError("USAGE", `${path}: no such file`);
  }
  if (format !== "parquet") await refuseBinary(path, format);
  switch (format) {
    case "parquet":
      return openParquet(path, bytes, options.column);
    case "csv":
    case "tsv": {
      const source = openDelimited(path, bytes, format, options.column);
      source.column = await probeDelimitedColumn(path, format, options.column);
      return source;
    }
    case "jsonl": {
      const source = openJsonLines(path, bytes, options.column);
      source.column = await probeJsonField(path, options.column);
      return source;
    }
    case "text":
      return openText(path, bytes);
  }
}

/** How much of a text input is sniffed for binary content. */
const SNIFF_BYTES = 64 * 1024;

/**
 * Text formats must be text: a NUL byte or bytes that are not UTF-8 in the first 64 KiB mean a
 * binary file (an image, an archive, a parquet file named .txt) that would otherwise be read as
 * thousands of garbage "captions".
 */
async function refuseBinary(path: string, format: CaptionFormat): Promise<void> {
  const handle = await open(path, "r");
  let head: Buffer;
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    head = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  // A multi-byte character may be cut at the end of the sample: judge the complete part only.
  const complete = head.length === SNIFF_BYTES ? head.subarray(0, head.length - 4) : head;
  if (complete.includes(0)) {
    const hint = head.subarray(0, 4).toString("latin1") === "PAR1" ? " (it is a parquet file)" : "";
    throw new UserError(
      "USAGE",
      `${path}: this is a binary file, not ${format} text${hint}; pass a caption file or the right --format`,
    );
  }
  if (!isUtf8(complete)) {
    throw new UserError(
      "USAGE",
      `${path}: not UTF-8 text; convert it first (e.g. iconv -f latin1 -t utf-8)`,
    );
  }
}

/** The column to use among those a file has: the named one, else TEXT or caption. */
function pickColumn(
  path: string,
  available: readonly string[],
  requested: string | undefined,
  what: "column" | "field",
): string {
  if (requested !== undefined) {
    if (available.includes(requested)) return requested;
  } else {
    for (const candidate of DEFAULT_CAPTION_COLUMNS) {
      if (available.includes(candidate)) return candidate;
    }
    for (const candidate of DEFAULT_CAPTION_COLUMNS) {
      const match = available.find((name) => name.toLowerCase() === candidate.toLowerCase());
      if (match !== undefined) return match;
    }
  }
  const asked = requested ?? DEFAULT_CAPTION_COLUMNS.join(" or ");
  const list = available.length > 0 ? available.map((c) => JSON.stringify(c)).join(", ") : "none";
  throw new UserError(
    "USAGE",
    `${path} has no ${what} ${requested === undefined ? asked : JSON.stringify(asked)} ` +
      `(its ${what}s: ${list}); choose one with --column`,
  );
}

/** The first 64 KiB of a file, whole lines only (all of it when the file is that small). */
async function head(path: string): Promise<{ text: string; whole: boolean }> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(1 << 16);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    const whole = bytesRead < buffer.length;
    const text = buffer.toString("utf8", 0, bytesRead);
    return { text: whole ? text : text.slice(0, text.lastIndexOf("\n") + 1), whole };
  } finally {
    await file.close();
  }
}

/**
 * The caption column from the header, read up front so that a missing column fails before any
 * output is written. Undefined when the header cannot be judged from the first 64 KiB (the
 * streaming reader then checks it).
 */
async function probeDelimitedColumn(
  path: string,
  format: "csv" | "tsv",
  requested: string | undefined,
): Promise<string | null> {
  const { text } = await head(path);
  let header: string[] | undefined;
  try {
    header = (
      parseCsvSync(text, {
        bom: true,
        delimiter: format === "tsv" ? "\t" : ",",
        quote: format === "tsv" ? false : '"',
        relax_quotes: true,
        relax_column_count: true,
        skip_empty_lines: true,
        to_line: 1,
      }) as string[][]
    )[0];
  } catch {
    return requested ?? null;
  }
  if (header === undefined) return requested ?? null;
  return pickColumn(
    path,
    header.map((name) => name.trim()),
    requested,
    "column",
  );
}

/** The JSONL field from the first object in the first 64 KiB; see probeDelimitedColumn. */
async function probeJsonField(path: string, requested: string | undefined): Promise<string | null> {
  const { text } = await head(path);
  for (const raw of text.split("\n")) {
    const line = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return pickColumn(path, Object.keys(value), requested, "field");
    }
  }
  return requested ?? null;
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

// ---------------------------------------------------------------------------------------------
// Parquet

async function openParquet(
  path: string,
  bytes: number,
  requested: string | undefined,
): Promise<CaptionSource> {
  const file = await asyncBufferFromFile(path);
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (error) {
    throw new UserError("USAGE", `${path} is not a readable parquet file: ${errorText(error)}`, {
      cause: error,
    });
  }
  const topLevel = parquetSchema(metadata).children.map((child) => child.element.name);
  const column = pickColumn(path, topLevel, requested, "column");
  const totalRows = Number(metadata.num_rows);
  let done = 0;

  async function* records(): AsyncGenerator<CaptionRecord> {
    let groupStart = 0;
    for (const group of metadata.row_groups) {
      const groupRows = Number(group.num_rows);
      let values: unknown[] = [];
      // One row group, one column at a time: memory is bounded by the largest row group.
      await parquetRead({
        file,
        metadata,
        columns: [column],
        rowStart: groupStart,
        rowEnd: groupStart + groupRows,
        onComplete: (rows) => {
          values = rows.map((row) => row[0]);
        },
      });
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        const row = groupStart + i + 1;
        if (typeof value === "string") yield { row, text: value };
        else
          yield {
            row,
            malformed:
              value === null || value === undefined
                ? `${column} is null`
                : `${column} is ${describeValue(value)}, not a string`,
          };
      }
      values = []; // the group's strings are garbage once yielded
      groupStart += groupRows;
      done = groupStart;
    }
  }
  return {
    path,
    format: "parquet",
    column,
    bytes,
    totalRows,
    fraction: () => (totalRows === 0 ? 1 : done / totalRows),
    records: records(),
  };
}

// ---------------------------------------------------------------------------------------------
// Line-based formats

/**
 * Lines of a UTF-8 file ("\n" or "\r\n"), pulled from the stream's own async iterator so the
 * file is read only as fast as lines are consumed (readline's iterator buffers ahead without
 * bound when the consumer is slower than the disk).
 */
function lineStream(path: string) {
  const stream = createReadStream(path, { encoding: "utf8", highWaterMark: 1 << 16 });
  async function* lines(): AsyncGenerator<string> {
    let rest = "";
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = rest + chunk;
      let start = 0;
      for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
        yield text.charCodeAt(end - 1) === 13 && end > start
          ? text.slice(start, end - 1)
          : text.slice(start, end);
        start = end + 1;
      }
      rest = text.slice(start);
    }
    if (rest !== "") yield rest.endsWith("\r") ? rest.slice(0, -1) : rest;
  }
  return { stream, lines: lines() };
}

function openText(path: string, bytes: number): CaptionSource {
  let stream: ReturnType<typeof lineStream>["stream"] | undefined;
  async function* records(): AsyncGenerator<CaptionRecord> {
    const opened = lineStream(path);
    stream = opened.stream;
    let row = 0;
    try {
      for await (const line of opened.lines) {
        row += 1;
        // A UTF-8 byte order mark is not part of the first caption.
        yield { row, text: row === 1 && line.charCodeAt(0) === 0xfeff ? line.slice(1) : line };
      }
    } finally {
      await opened.lines.return(undefined);
      opened.stream.destroy();
    }
  }
  return {
    path,
    format: "text",
    column: null,
    bytes,
    fraction: () => (bytes === 0 || !stream ? 0 : Math.min(1, stream.bytesRead / bytes)),
    records: records(),
  };
}

function openJsonLines(path: string, bytes: number, requested: string | undefined): CaptionSource {
  let stream: ReturnType<typeof lineStream>["stream"] | undefined;
  const source: CaptionSource = {
    path,
    format: "jsonl",
    column: requested ?? null,
    bytes,
    fraction: () => (bytes === 0 || !stream ? 0 : Math.min(1, stream.bytesRead / bytes)),
    records: records(),
  };
  async function* records(): AsyncGenerator<CaptionRecord> {
    const opened = lineStream(path);
    stream = opened.stream;
    let row = 0;
    let field: string | undefined;
    try {
      for await (const raw of opened.lines) {
        row += 1;
        const line = row === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
        if (line.trim() === "") {
          yield { row, malformed: "blank line" };
          continue;
        }
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (error) {
          yield { row, malformed: `invalid JSON (${errorText(error)})` };
          continue;
        }
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          yield { row, malformed: `not a JSON object but ${describeValue(value)}` };
          continue;
        }
        const object = value as Record<string, unknown>;
        // The first object decides the field: a file without it is an error, not N bad rows.
        if (field === undefined) {
          field = pickColumn(path, Object.keys(object), requested, "field");
          source.column = field;
        }
        if (!Object.hasOwn(object, field)) {
          yield { row, malformed: `no field "${field}"` };
          continue;
        }
        const text = object[field];
        if (typeof text === "string") yield { row, text };
        else yield { row, malformed: `"${field}" is ${describeValue(text)}, not a string` };
      }
    } finally {
      await opened.lines.return(undefined);
      opened.stream.destroy();
    }
  }
  return source;
}

// ---------------------------------------------------------------------------------------------
// CSV / TSV

function openDelimited(
  path: string,
  bytes: number,
  format: "csv" | "tsv",
  requested: string | undefined,
): CaptionSource {
  let stream: ReturnType<typeof createReadStream> | undefined;
  const source: CaptionSource = {
    path,
    format,
    column: requested ?? null,
    bytes,
    fraction: () => (bytes === 0 || !stream ? 0 : Math.min(1, stream.bytesRead / bytes)),
    records: records(),
  };
  async function* records(): AsyncGenerator<CaptionRecord> {
    stream = createReadStream(path, { highWaterMark: 1 << 16 });
    // Records a parse error made unreadable (an unclosed quote, …): reported, then skipped.
    const skipped: string[] = [];
    const parser = parseCsv({
      bom: true,
      delimiter: format === "tsv" ? "\t" : ",",
      // TSV files (LAION, CC3M) do not quote: a " in a caption is just a character.
      quote: format === "tsv" ? false : '"',
      relax_quotes: true,
      relax_column_count: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_skip: (error) => {
        skipped.push(error ? error.message : "unreadable record");
        return undefined;
      },
      info: true,
    });
    stream.pipe(parser);
    stream.on("error", (error) => parser.destroy(error));
    let header: string[] | undefined;
    let index = -1;
    let row = 0;
    try {
      for await (const item of parser as AsyncIterable<{
        record: string[];
        info: { lines: number };
      }>) {
        while (skipped.length > 0) {
          row += 1;
          yield { row, malformed: skipped.shift() as string };
        }
        const { record, info } = item;
        if (header === undefined) {
          header = record.map((name) => name.trim());
          const column = pickColumn(path, header, requested, "column");
          source.column = column;
          index = header.indexOf(column);
          continue;
        }
        row += 1;
        if (record.length !== header.length) {
          yield {
            row,
            malformed: `line ${info.lines}: ${record.length} fields, the header has ${header.length}`,
          };
          continue;
        }
        yield { row, text: record[index] as string };
      }
      while (skipped.length > 0) {
        row += 1;
        yield { row, malformed: skipped.shift() as string };
      }
      if (header === undefined) pickColumn(path, [], requested, "column");
    } finally {
      stream.unpipe(parser);
      stream.destroy();
      parser.destroy();
    }
  }
  return source;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
