/**
 * PNG metadata in AUTOMATIC1111's format, so that a saved image opens in A1111's "PNG Info"
 * tab, in ComfyUI-Manager, civitai and other tools that read the "parameters" text chunk.
 *
 * The text is what A1111's `create_infotext` (modules/processing.py) writes:
 *
 *     a lighthouse at dusk, oil painting
 *     Negative prompt: blurry
 *     Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 768x768, Model: stabilityai/stable-diffusion-2
 *
 * The negative prompt line is left out when there is none; values containing `,`, `:` or a newline
 * are JSON-quoted (A1111's `infotext_utils.quote`); a float CFG scale prints as Python does
 * (`7.0`, not `7`). Like PIL's `PngInfo.add_text`, which A1111 uses, the chunk is tEXt when the
 * text is Latin-1 and an uncompressed iTXt (UTF-8) otherwise.
 *
 * The study arm is never written: `formatA1111Parameters` refuses an `extra` key naming an arm
 * ("arm", "Arm name", "study_arm", "armId", …) rather than silently dropping it, because passing
 * one is a bug in the caller that would unblind a study.
 */

import { inflateSync } from "node:zlib";
import { BotError } from "../errors.js";

/** What the parameters chunk records; `extra` keys follow A1111's `Key name` form. */
export interface PngParameters {
  prompt: string;
  negativePrompt?: string;
  steps: number;
  sampler?: string;
  cfgScale: number;
  seed: number;
  width: number;
  height: number;
  model: string;
  /** Further `Key: value` pairs, written after Model in insertion order. Never the arm. */
  extra?: Record<string, string>;
}

/** What parseA1111Parameters recovers: any field the text had, plus unknown keys in `extra`. */
export interface ParsedParameters extends Partial<Omit<PngParameters, "prompt" | "extra">> {
  prompt: string;
  extra: Record<string, string>;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const KEYWORD = "parameters";
/** A1111's parameter names: `\w[\w \-/]+` (infotext_utils.re_param_code). */
const PARAM_KEY = /^\w[\w \-/]+$/;

// ── The A1111 text ────────────────────────────────────────────────────────────────────────────

/** Formats the parameters exactly as AUTOMATIC1111 writes them into a PNG. */
export function formatA1111Parameters(p: PngParameters): string {
  const params: [string, string | number][] = [["Steps", p.steps]];
  if (p.sampler) params.push(["Sampler", p.sampler]);
  params.push(
    ["CFG scale", pythonFloat(p.cfgScale)],
    ["Seed", p.seed],
    ["Size", `${p.width}x${p.height}`],
    ["Model", p.model],
  );
  for (const [key, value] of Object.entries(p.extra ?? {})) {
    if (namesArm(key)) {
      throw new BotError(
        "GENERATION_FAILED",
        `PNG parameters: refusing to write "${key}": the study arm never goes into image metadata`,
      );
    }
    if (!PARAM_KEY.test(key)) {
      throw new BotError(
        "GENERATION_FAILED",
        `PNG parameters: "${key}" is not a valid A1111 parameter name (letters, digits, space, -, /)`,
      );
    }
    params.push([key, value]);
  }
  const line = params
    .map(([key, value]) => (key === value ? key : `${key}: ${quote(String(value))}`))
    .join(", ");
  const negative = p.negativePrompt ? `\nNegative prompt: ${p.negativePrompt}` : "";
  return `${p.prompt}${negative}\n${line}`.trim();
}

/** True for a key that names the study arm in any spelling: a word "arm"/"arms" in it. */
export function namesArm(key: string): boolean {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/);
  return words.some((word) => word === "arm" || word === "arms");
}

/** A1111's infotext_utils.quote: JSON-quote values that would break the `k: v, …` line. */
function quote(value: string): string {
  if (!value.includes(",") && !value.includes("\n") && !value.includes(":")) return value;
  return JSON.stringify(value);
}

/** Python's str() of a float for the values we write: 7 → "7.0", 7.5 → "7.5". */
function pythonFloat(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

const PARAM_PATTERN = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;

/**
 * Parses A1111's parameters text (the inverse of formatA1111Parameters, following A1111's
 * `parse_generation_parameters`): the last line holds the `Key: value` pairs when it has at least
 * three of them; lines from "Negative prompt:" on are the negative prompt.
 */
export function parseA1111Parameters(text: string): ParsedParameters {
  const lines = text.trim().split("\n");
  let last = lines.pop() ?? "";
  if ([...last.matchAll(PARAM_PATTERN)].length < 3) {
    lines.push(last);
    last = "";
  }
  let prompt = "";
  let negative = "";
  let inNegative = false;
  for (const raw of lines) {
    let line = raw.trim();
    if (line.startsWith("Negative prompt:")) {
      inNegative = true;
      line = line.slice("Negative prompt:".length).trim();
    }
    if (inNegative) negative += (negative ? "\n" : "") + line;
    else prompt += (prompt ? "\n" : "") + line;
  }

  const parsed: ParsedParameters = { prompt, extra: {} };
  if (inNegative) parsed.negativePrompt = negative;
  for (const match of last.matchAll(PARAM_PATTERN)) {
    const key = (match[1] as string).trim();
    let value = (match[2] as string).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        // Kept as written, as A1111 does with a value it cannot unquote.
      }
    }
    switch (key) {
      case "Steps":
        parsed.steps = Number(value);
        break;
      case "Sampler":
        parsed.sampler = value;
        break;
      case "CFG scale":
        parsed.cfgScale = Number(value);
        break;
      case "Seed":
        parsed.seed = Number(value);
        break;
      case "Size": {
        const size = /^(\d+)x(\d+)$/.exec(value);
        if (size) {
          parsed.width = Number(size[1]);
          parsed.height = Number(size[2]);
        } else parsed.extra[key] = value;
        break;
      }
      case "Model":
        parsed.model = value;
        break;
      default:
        parsed.extra[key] = value;
    }
  }
  return parsed;
}

// ── PNG chunks ────────────────────────────────────────────────────────────────────────────────

interface Chunk {
  type: string;
  /** Offset of the chunk's length field in the file. */
  start: number;
  /** Offset just past its CRC. */
  end: number;
  data: Buffer;
}

/** Splits a PNG into chunks, checking the signature, the lengths and that IHDR comes first. */
function readChunks(png: Buffer): Chunk[] {
  if (png.length < PNG_SIGNATURE.length || !png.subarray(0, 8).equals(PNG_SIGNATURE)) {
    throw new BotError("GENERATION_FAILED", "Not a PNG file (bad signature)");
  }
  const chunks: Chunk[] = [];
  let offset = 8;
  while (offset < png.length) {
    if (offset + 12 > png.length) {
      throw new BotError("GENERATION_FAILED", "PNG is truncated (partial chunk header)");
    }
    const length = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const end = offset + 12 + length;
    if (end > png.length) {
      throw new BotError("GENERATION_FAILED", `PNG is truncated (chunk ${type} runs past the end)`);
    }
    chunks.push({ type, start: offset, end, data: png.subarray(offset + 8, offset + 8 + length) });
    offset = end;
    if (type === "IEND") break;
  }
  if (chunks[0]?.type !== "IHDR") {
    throw new BotError("GENERATION_FAILED", "PNG does not start with an IHDR chunk");
  }
  if (!chunks.some((chunk) => chunk.type === "IDAT")) {
    throw new BotError("GENERATION_FAILED", "PNG has no IDAT chunk");
  }
  return chunks;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309 / PNG), table-driven: Node 20 has no zlib.crc32. */
export function crc32(...parts: Buffer[]): number {
  let crc = 0xffffffff;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) {
      crc = (CRC_TABLE[(crc ^ (part[i] as number)) & 0xff] as number) ^ (crc >>> 8);
    }
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function makeChunk(type: string, data: Buffer): Buffer {
  const typeBytes = Buffer.from(type, "latin1");
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  typeBytes.copy(out, 4);
  data.copy(out, 8);
  out.writeUInt32BE(crc32(typeBytes, data), 8 + data.length);
  return out;
}

function isLatin1(text: string): boolean {
  // tEXt holds printable Latin-1 and newlines only.
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x0a && (code < 0x20 || (code > 0x7e && code < 0xa0) || code > 0xff)) return false;
  }
  return true;
}

/** A tEXt chunk for Latin-1 text, else an uncompressed iTXt (as PIL's add_text does). */
function textChunk(keyword: string, text: string): Buffer {
  if (isLatin1(text)) {
    return makeChunk(
      "tEXt",
      Buffer.concat([
        Buffer.from(keyword, "latin1"),
        Buffer.from([0]),
        Buffer.from(text, "latin1"),
      ]),
    );
  }
  // keyword \0, compression flag 0, method 0, empty language tag \0, empty translated keyword \0
  return makeChunk(
    "iTXt",
    Buffer.concat([
      Buffer.from(keyword, "latin1"),
      Buffer.from([0, 0, 0, 0, 0]),
      Buffer.from(text, "utf8"),
    ]),
  );
}

/** The keyword and text of a tEXt, zTXt or iTXt chunk; undefined for other chunks. */
function decodeTextChunk(chunk: Chunk): { keyword: string; text: string } | undefined {
  const { type, data } = chunk;
  if (type !== "tEXt" && type !== "zTXt" && type !== "iTXt") return undefined;
  const nul = data.indexOf(0);
  if (nul < 0) return undefined;
  const keyword = data.toString("latin1", 0, nul);
  try {
    if (type === "tEXt") return { keyword, text: data.toString("latin1", nul + 1) };
    if (type === "zTXt") {
      return { keyword, text: inflateSync(data.subarray(nul + 2)).toString("latin1") };
    }
    const compressed = data[nul + 1] === 1;
    const languageEnd = data.indexOf(0, nul + 3);
    const translatedEnd = languageEnd < 0 ? -1 : data.indexOf(0, languageEnd + 1);
    if (translatedEnd < 0) return undefined;
    const body = data.subarray(translatedEnd + 1);
    return { keyword, text: (compressed ? inflateSync(body) : body).toString("utf8") };
  } catch {
    return undefined;
  }
}

/**
 * Returns a copy of the PNG with a "parameters" text chunk right after IHDR (so before IDAT),
 * replacing any parameters chunk it had. Pixel data is untouched.
 */
export function withParametersChunk(png: Buffer, text: string): Buffer {
  const chunks = readChunks(png);
  const parts: Buffer[] = [png.subarray(0, 8)];
  for (const chunk of chunks) {
    if (decodeTextChunk(chunk)?.keyword === KEYWORD) continue;
    parts.push(png.subarray(chunk.start, chunk.end));
    if (chunk.type === "IHDR") parts.push(textChunk(KEYWORD, text));
  }
  return Buffer.concat(parts);
}

/** The "parameters" text of a PNG (tEXt, zTXt or iTXt), or undefined when it has none. */
export function readParametersChunk(png: Buffer): string | undefined {
  for (const chunk of readChunks(png)) {
    const decoded = decodeTextChunk(chunk);
    if (decoded?.keyword === KEYWORD) return decoded.text;
  }
  return undefined;
}

/**
 * Returns the PNG without its text chunks (tEXt, zTXt, iTXt), so that what a server wrote into
 * it (ComfyUI's whole workflow, A1111's own parameters) does not travel with the image; the
 * parameters chunk is added later by the store.
 */
export function withoutTextChunks(png: Buffer): Buffer {
  const chunks = readChunks(png);
  const kept = chunks.filter((c) => c.type !== "tEXt" && c.type !== "zTXt" && c.type !== "iTXt");
  if (kept.length === chunks.length) return png;
  return Buffer.concat([png.subarray(0, 8), ...kept.map((c) => png.subarray(c.start, c.end))]);
}

/**
 * The chunks a blind copy keeps: the critical ones (IHDR, PLTE, IDAT, IEND) and tRNS, without
 * which transparent pixels would change. Every other ancillary chunk goes — text (tEXt, zTXt,
 * iTXt), eXIf, tIME, iCCP (it names its profile), colour and physical-size hints, APNG frames,
 * private chunks — because any of them could carry something a backend or a tool set per image.
 */
const IMAGE_CHUNKS = new Set(["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]);

/**
 * Returns the PNG with nothing but its image: every ancillary chunk except tRNS is dropped, and
 * so are any bytes after IEND. Pixels are untouched (the IDAT chunks are copied as they are).
 * This is what a study upload carries, so a rater who opens the file finds no prompt, model or
 * setting that could tell arms apart.
 */
export function withoutMetadata(png: Buffer): Buffer {
  const chunks = readChunks(png);
  if (chunks.at(-1)?.type !== "IEND") {
    throw new BotError("GENERATION_FAILED", "PNG has no IEND chunk");
  }
  return Buffer.concat([
    png.subarray(0, 8),
    ...chunks.filter((c) => IMAGE_CHUNKS.has(c.type)).map((c) => png.subarray(c.start, c.end)),
  ]);
}

/** The chunk types of a PNG, in file order (after checking its structure as readChunks does). */
export function pngChunkTypes(png: Buffer): string[] {
  return readChunks(png).map((chunk) => chunk.type);
}

/** True when the bytes start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(PNG_SIGNATURE);
}
