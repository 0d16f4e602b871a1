import { describe, expect, it } from "vitest";
import { UserError } from "../../../src/core/errors.js";
import type { TokenizerFiles } from "../../../src/core/image/local/modelDir.js";
import { clipTokenizerJson, loadClipTokenizer } from "../../../src/core/image/local/tokenizer.js";

/**
 * A miniature CLIP vocabulary in CLIP's id order: single characters, the same with "</w>", one
 * token per merge, then the two specials. (The fixture's reference ids are compared in
 * pipeline.test.ts; these cases pin CLIP's rules one at a time.)
 */
function miniature(pad = "<|endoftext|>", maxLength = 77): TokenizerFiles {
  const characters = [..."!,abcdefghijklmnopqrstuvwxyz"];
  const merges = ["l i", "li g", "h t", "lig ht", "o u", "s e</w>", "ou se</w>", "h ouse</w>"];
  const tokens = [
    ...characters,
    ...characters.map((c) => `${c}</w>`),
    ...merges.map((m) => m.replace(" ", "")),
    "<|startoftext|>",
    "<|endoftext|>",
  ];
  const vocab = Object.fromEntries(tokens.map((token, id) => [token, id]));
  return {
    vocab,
    merges,
    config: { model_max_length: maxLength, pad_token: pad },
    specialTokens: {},
  };
}

function tokensOf(files: TokenizerFiles, text: string): string[] {
  const names = new Map(Object.entries(files.vocab ?? {}).map(([token, id]) => [id, token]));
  return loadClipTokenizer(files, "mini")
    .encode(text)
    .map((id) => names.get(id) as string);
}

describe("CLIP tokenizer from vocab.json + merges.txt", () => {
  it("lower-cases, collapses whitespace, marks word ends and wraps in start/end", () => {
    const tokens = tokensOf(miniature("<|endoftext|>", 8), "A  Lighthouse,\ta");
    expect(tokens).toEqual([
      "<|startoftext|>",
      "a</w>",
      "light", // no merge makes "lighthouse", so BPE stops at light + house</w>
      "house</w>",
      ",</w>",
      "a</w>",
      "<|endoftext|>",
      "<|endoftext|>", // SD 1.x pads with <|endoftext|>
    ]);
  });

  it("pads with the pad token the files name (SD 2.x: '!', id 0)", () => {
    const files = miniature("!", 6);
    const tokenizer = loadClipTokenizer(files, "mini");
    expect(tokenizer.padId).toBe(0);
    expect(tokensOf(files, "a")).toEqual([
      "<|startoftext|>",
      "a</w>",
      "<|endoftext|>",
      "!",
      "!",
      "!",
    ]);
  });

  it("truncates to model_max_length and keeps <|endoftext|> last", () => {
    const ids = loadClipTokenizer(miniature(), "mini").encode("a ".repeat(200));
    expect(ids).toHaveLength(77);
    const files = miniature();
    expect(ids[0]).toBe(files.vocab?.["<|startoftext|>"]);
    expect(ids[76]).toBe(files.vocab?.["<|endoftext|>"]);
    expect(new Set(ids.slice(1, 76))).toEqual(new Set([files.vocab?.["a</w>"]]));
  });

  it("gives the same ids from the tokenizer.json it builds as from the slow files", () => {
    const slow = miniature();
    const fast: TokenizerFiles = {
      tokenizerJson: clipTokenizerJson(slow, "mini"),
      config: slow.config,
      specialTokens: {},
    };
    const text = "a lighthouse, a house";
    expect(loadClipTokenizer(fast, "mini").encode(text)).toEqual(
      loadClipTokenizer(slow, "mini").encode(text),
    );
  });

  it("names the file problem: a pad token or specials missing from the vocabulary", () => {
    expect(() => loadClipTokenizer(miniature("<pad>"), "tok")).toThrow(UserError);
    expect(() => loadClipTokenizer(miniature("<pad>"), "tok")).toThrow(/tok: the pad token <pad>/);
    const files = miniature();
    const { "<|startoftext|>": _, ...withoutStart } = files.vocab ?? {};
    expect(() => loadClipTokenizer({ ...files, vocab: withoutStart }, "tok")).toThrow(
      /vocab.json has no <\|startoftext\|>/,
    );
  });
});
