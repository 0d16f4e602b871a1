import { describe, expect, it } from "vitest";
import {
  decodeTokens,
  END_OF_TEXT_ID,
  encodeTag,
  encodeTaggedCaption,
  encodeText,
} from "../../src/core/prompt/tokenizer.js";

describe("GPT-2 tokenizer", () => {
  it("gives GPT-2's ids for known text", () => {
    // Reference ids from the original GPT-2 encoder (encoder.json / vocab.bpe).
    expect(encodeText("Hello world")).toEqual([15496, 995]);
    expect(encodeText(" the")).toEqual([262]);
  });

  it.each([
    "a lighthouse on a cliff at sunset, oil painting",
    "naïve café — “quoted” text",
    "emoji 🌅🦊👩‍👩‍👧 and flags 🇬🇧",
    "日本語のキャプション",
    "  leading and trailing spaces  \t\n",
    "<|endoftext|> typed by a person",
  ])("round-trips %j byte for byte", (text) => {
    const ids = encodeText(text);
    expect(decodeTokens(ids)).toBe(text);
    expect(Buffer.from(decodeTokens(ids), "utf8").equals(Buffer.from(text, "utf8"))).toBe(true);
  });

  it("keeps a typed <|endoftext|> as plain text but encodes the end tag as one token", () => {
    expect(encodeText("<|endoftext|>")).not.toContain(END_OF_TEXT_ID);
    expect(encodeTag("<|endoftext|>")).toEqual([END_OF_TEXT_ID]);
    expect(encodeTag("<|startoftext|>").length).toBeGreaterThan(1);
  });

  it("wraps a caption in its tags", () => {
    const tags = { start: "<|startoftext|>", end: "<|endoftext|>" };
    const ids = encodeTaggedCaption("a red fox", tags);
    expect(ids).toEqual([...encodeTag(tags.start), ...encodeText("a red fox"), END_OF_TEXT_ID]);
  });
});

describe("decodeTokens is stateless", () => {
  it("does not carry an unfinished character into the next call", () => {
    const ids = encodeText("東");
    expect(ids.length).toBeGreaterThan(1);
    // A call that ends inside a character, then plain text: gpt-tokenizer's own decode (4.0.0)
    // prefixed the second result with the first call's leftover bytes.
    expect(decodeTokens(ids.slice(0, 1))).toBe("\uFFFD");
    expect(decodeTokens(encodeText("a dog"))).toBe("a dog");
    expect(decodeTokens(ids.slice(0, 1))).toBe("\uFFFD");
    expect(decodeTokens([...ids.slice(1), ...encodeText(" x")])).toMatch(/^\uFFFD+ x$/u);
    expect(decodeTokens(ids)).toBe("東");
    expect(decodeTokens([END_OF_TEXT_ID])).toBe("<|endoftext|>");
  });
});
