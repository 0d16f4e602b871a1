/**
 * Plain-text captions → train/eval token files. This is the small first step of the data
 * pipeline: one caption per line, whitespace normalised, empty lines dropped, an optional
 * start/end tag around each caption, and a seeded train/eval split.
 */
import { createReadStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { createInterface } from "node:readline";
import { encodeTag, encodeText } from "../prompt/tokenizer.js";
import { seededRandom } from "../random.js";
import { type TokenFileHeader, TokenFileWriter } from "./tokenFile.js";

export interface TokenizeOptions {
  inputs: string[];
  outDir: string;
  tags: { start: string; end: string } | null;
  /** Fraction of captions held out for evaluation (the paper: 0.1). */
  evalFraction: number;
  seed: number;
  /** Stop after this many kept captions (the paper: the first 450,000). */
  limit?: number;
}

export interface TokenizeReport {
  read: number;
  kept: number;
  dropped: { empty: number };
  train: TokenFileHeader;
  eval: TokenFileHeader;
}

/** Collapses runs of whitespace and control characters, so one caption is one clean line. */
export function normaliseCaption(line: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return line.replace(/[\u0000-\u001f\u007f\s]+/gu, " ").trim();
}

export async function tokenizeCaptions(options: TokenizeOptions): Promise<TokenizeReport> {
  await mkdir(options.outDir, { recursive: true });
  const source = options.inputs.map((input) => basename(input)).join(", ");
  const train = await TokenFileWriter.create(join(options.outDir, "train.tokens"), {
    tags: options.tags,
    source,
  });
  const evaluation = await TokenFileWriter.create(join(options.outDir, "eval.tokens"), {
    tags: options.tags,
    source,
  });
  const startIds = options.tags ? encodeTag(options.tags.start) : [];
  const endIds = options.tags ? encodeTag(options.tags.end) : [];
  const random = seededRandom(options.seed);
  let read = 0;
  let kept = 0;
  let empty = 0;

  outer: for (const input of options.inputs) {
    const lines = createInterface({ input: createReadStream(input, "utf8"), crlfDelay: Infinity });
    for await (const line of lines) {
      read += 1;
      const caption = normaliseCaption(line);
      if (caption === "") {
        empty += 1;
        continue;
      }
      const captionIds = encodeText(caption);
      const writer = random.next() < options.evalFraction ? evaluation : train;
      await writer.appendDocument([...startIds, ...captionIds, ...endIds], captionIds.length);
      kept += 1;
      if (options.limit !== undefined && kept >= options.limit) {
        lines.close();
        break outer;
      }
    }
  }
  return {
    read,
    kept,
    dropped: { empty },
    train: await train.close(),
    eval: await evaluation.close(),
  };
}
