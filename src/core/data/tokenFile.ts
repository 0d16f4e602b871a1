/**
 * Token files: the hand-off from the TypeScript data pipeline to training/ (Python never
 * tokenizes). Layout, little-endian:
 *
 *   bytes 0–3   ASCII magic "IMTK"
 *   bytes 4–7   uint32 header length H
 *   8 … 8+H     UTF-8 JSON header, space-padded so token data starts 8-byte aligned
 *   8+H … EOF   uint16 token ids
 *
 * The writer reserves a fixed header slot so it can stream tokens first and fill in the counts
 * when it closes; training/tokens.py reads the same layout with numpy.memmap.
 */
import { type FileHandle, open } from "node:fs/promises";
import { BotError } from "../errors.js";
import { GPT2_VOCAB_SIZE } from "../prompt/tokenizer.js";

export const TOKEN_FILE_MAGIC = "IMTK";
/** Header slot size: 8 + H = 4096, so token data is page-aligned. */
const HEADER_SLOT_BYTES = 4088;
const FLUSH_TOKENS = 1 << 16;

export interface TokenFileHeader {
  format: "imagine-bot/tokens";
  version: 1;
  dtype: "uint16";
  tokenizer: "gpt2";
  vocabSize: number;
  /** Token ids in the file. */
  tokens: number;
  /** Captions (documents) in the file. */
  documents: number;
  /** Mean GPT-2 token length of the captions themselves, tags excluded. */
  meanCaptionTokens: number;
  tags: { start: string; end: string } | null;
  /** Where the captions came from, for provenance. */
  source: string;
}

export class TokenFileWriter {
  private buffer = new Uint16Array(FLUSH_TOKENS);
  private buffered = 0;
  private position = 8 + HEADER_SLOT_BYTES;
  private tokens = 0;
  private documents = 0;
  private captionTokens = 0;

  private constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    private readonly meta: { tags: TokenFileHeader["tags"]; source: string },
  ) {}

  static async create(
    path: string,
    meta: { tags: TokenFileHeader["tags"]; source: string },
  ): Promise<TokenFileWriter> {
    return new TokenFileWriter(await open(path, "w"), path, meta);
  }

  /**
   * Appends one document. `captionTokens` is the caption's own length (tags excluded), used for
   * the mean caption length that becomes the model's default generation cap.
   */
  async appendDocument(ids: ArrayLike<number>, captionTokens: number): Promise<void> {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (!Number.isInteger(id) || id < 0 || id >= GPT2_VOCAB_SIZE) {
        throw new BotError("TOKEN_FILE_INVALID", `token id ${id} is outside GPT-2's vocabulary`);
      }
      this.buffer[this.buffered++] = id;
      if (this.buffered === this.buffer.length) await this.flush();
    }
    this.tokens += ids.length;
    this.documents += 1;
    this.captionTokens += captionTokens;
  }

  private async flush(): Promise<void> {
    if (this.buffered === 0) return;
    const bytes = Buffer.from(this.buffer.buffer, 0, this.buffered * 2);
    // Uint16Array uses the platform's byte order; the format is little-endian.
    if (!isLittleEndian) bytes.swap16();
    await this.file.write(bytes, 0, bytes.length, this.position);
    this.position += bytes.length;
    this.buffered = 0;
  }

  /** Flushes, writes the header with the final counts and closes the file. */
  async close(): Promise<TokenFileHeader> {
    await this.flush();
    const header: TokenFileHeader = {
      format: "imagine-bot/tokens",
      version: 1,
      dtype: "uint16",
      tokenizer: "gpt2",
      vocabSize: GPT2_VOCAB_SIZE,
      tokens: this.tokens,
      documents: this.documents,
      meanCaptionTokens: this.documents === 0 ? 0 : this.captionTokens / this.documents,
      tags: this.meta.tags,
      source: this.meta.source,
    };
    const json = Buffer.from(JSON.stringify(header), "utf8");
    if (json.length > HEADER_SLOT_BYTES) {
      throw new BotError("TOKEN_FILE_INVALID", `token file header for ${this.path} is too long`);
    }
    const prefix = Buffer.alloc(8 + HEADER_SLOT_BYTES, 0x20);
    prefix.write(TOKEN_FILE_MAGIC, 0, "ascii");
    prefix.writeUInt32LE(HEADER_SLOT_BYTES, 4);
    json.copy(prefix, 8);
    await this.file.write(prefix, 0, prefix.length, 0);
    await this.file.close();
    return header;
  }
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads a whole token file (tests and small files; training reads with numpy.memmap). */
export async function readTokenFile(
  path: string,
): Promise<{ header: TokenFileHeader; ids: Uint16Array }> {
  const file = await open(path, "r");
  try {
    const bytes = await file.readFile();
    if (bytes.length < 8 || bytes.toString("ascii", 0, 4) !== TOKEN_FILE_MAGIC) {
      throw new BotError(
        "TOKEN_FILE_INVALID",
        `${path} is not a token file (magic "IMTK" missing)`,
      );
    }
    const headerLength = bytes.readUInt32LE(4);
    const dataStart = 8 + headerLength;
    if (dataStart > bytes.length || (bytes.length - dataStart) % 2 !== 0) {
      throw new BotError("TOKEN_FILE_INVALID", `${path} is truncated`);
    }
    const header = JSON.parse(bytes.toString("utf8", 8, dataStart)) as TokenFileHeader;
    const ids = new Uint16Array((bytes.length - dataStart) / 2);
    for (let i = 0; i < ids.length; i++) ids[i] = bytes.readUInt16LE(dataStart + 2 * i);
    if (ids.length !== header.tokens) {
      throw new BotError(
        "TOKEN_FILE_INVALID",
        `${path} holds ${ids.length} tokens but its header says ${header.tokens}`,
      );
    }
    return { header, ids };
  } finally {
    await file.close();
  }
}
