/**
 * GPT-2 byte-level BPE, offline. gpt-tokenizer ships GPT-2's merge ranks (the r50k_base encoding
 * is GPT-2's vocabulary), so nothing is downloaded at run time.
 */
import r50k, { encode } from "gpt-tokenizer/encoding/r50k_base";

export const GPT2_VOCAB_SIZE = 50257;
export const END_OF_TEXT = "<|endoftext|>";
export const END_OF_TEXT_ID = 50256;

// Captions and subjects are data: "<|endoftext|>" typed by a person must stay plain text.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };
const END_OF_TEXT_ALLOWED = {
  allowedSpecial: new Set([END_OF_TEXT]),
  disallowedSpecial: new Set<string>(),
};

/** Token ids of text, treating every special-token spelling as ordinary characters. */
export function encodeText(text: string): number[] {
  return encode(text, PLAIN_TEXT);
}

/**
 * Token ids of a start or end tag. `<|endoftext|>` becomes GPT-2's single special token 50256,
 * any other tag is encoded as plain text (a few tokens).
 */
export function encodeTag(tag: string): number[] {
  return encode(tag, END_OF_TEXT_ALLOWED);
}

/** What decoding needs from gpt-tokenizer's BPE core: one token's bytes (or its text). */
interface TokenDecoder {
  tryDecodeToken(id: number): string | Uint8Array | undefined;
}

const UTF8 = new TextDecoder("utf-8");
const UTF8_ENCODER = new TextEncoder();
let tokenBytes: Uint8Array[] | undefined;

/**
 * Every token's bytes, once. gpt-tokenizer's own decode shares one streaming TextDecoder across
 * calls, so the partial UTF-8 bytes a call ends with leak into the next call's text (4.0.0);
 * decoding from the bytes with a non-streaming decoder keeps every call independent.
 */
function vocabularyBytes(): Uint8Array[] {
  if (tokenBytes) return tokenBytes;
  const core = (r50k as unknown as { bytePairEncodingCoreProcessor?: Partial<TokenDecoder> })
    .bytePairEncodingCoreProcessor;
  if (typeof core?.tryDecodeToken !== "function") {
    throw new Error("gpt-tokenizer changed: its BPE core no longer exposes tryDecodeToken");
  }
  const decodeToken = core.tryDecodeToken.bind(core);
  tokenBytes = Array.from({ length: GPT2_VOCAB_SIZE }, (_, id) => {
    const value = decodeToken(id);
    if (value === undefined) throw new Error(`token ${id} is not in GPT-2's vocabulary`);
    return typeof value === "string" ? UTF8_ENCODER.encode(value) : value;
  });
  return tokenBytes;
}

/**
 * Text of token ids; byte-exact for whole sequences (Unicode and emoji included). Bytes of an
 * incomplete character at the end become U+FFFD; nothing carries over to the next call.
 */
export function decodeTokens(ids: Iterable<number>): string {
  const table = vocabularyBytes();
  const parts: Uint8Array[] = [];
  let length = 0;
  for (const id of ids) {
    const bytes = table[id];
    if (bytes === undefined) throw new RangeError(`token ${id} is not in GPT-2's vocabulary`);
    parts.push(bytes);
    length += bytes.length;
  }
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return UTF8.decode(joined);
}

/** Tokens of one tagged training caption: start tag + caption + end tag. */
export function encodeTaggedCaption(
  caption: string,
  tags: { start: string; end: string },
): number[] {
  return [...encodeTag(tags.start), ...encodeText(caption), ...encodeTag(tags.end)];
}
