/**
 * GPT-2 byte-level BPE, offline. gpt-tokenizer ships GPT-2's merge ranks (the r50k_base encoding
 * is GPT-2's vocabulary), so nothing is downloaded at run time.
 */
import { decode, encode } from "gpt-tokenizer/encoding/r50k_base";

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

/** Text of token ids; byte-exact for whole sequences (Unicode and emoji included). */
export function decodeTokens(ids: Iterable<number>): string {
  return decode(ids);
}

/** Tokens of one tagged training caption: start tag + caption + end tag. */
export function encodeTaggedCaption(
  caption: string,
  tags: { start: string; end: string },
): number[] {
  return [...encodeTag(tags.start), ...encodeText(caption), ...encodeTag(tags.end)];
}
