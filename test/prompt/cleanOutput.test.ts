/**
 * Clean output from any model (src/core/prompt/cleanOutput.ts): new word after the subject, no
 * tag text, text = subject + continuation trimmed, prompt i independent of -n. Checked on the
 * tiny trained model, on the Hugging Face-layout fixture (random weights: the worst case for
 * gluing), and on a scripted decoder that tries hard to glue words and spell tags.
 */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  findTagFragment,
  needsWordBoundary,
  rowRandom,
  startsNewWord,
  tagTexts,
  tokenMasks,
} from "../../src/core/prompt/cleanOutput.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";
import { decodeTokens, END_OF_TEXT_ID, encodeText } from "../../src/core/prompt/tokenizer.js";
import type { GeneratedPrompt } from "../../src/core/types.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TINY = resolve(ROOT, "models", "tiny-caption-gpt2");
const HF = resolve(ROOT, "test", "fixtures", "hf-merged-gpt2");
const SAMPLING = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
const TAGS = tagTexts({ start: "<|startoftext|>", end: "<|endoftext|>" });
const SUBJECTS = ["a dog", "sunset over the ocean", "a cat", "a red fox"];

function expectClean(subject: string, prompts: GeneratedPrompt[]): void {
  for (const prompt of prompts) {
    expect(prompt.text.startsWith(subject)).toBe(true);
    expect(prompt.text).toBe(prompt.text.trim());
    const continuation = prompt.text.slice(subject.length);
    if (continuation.length > 0) expect(startsNewWord(continuation), prompt.text).toBe(true);
    expect(findTagFragment(prompt.text, TAGS), prompt.text).toBe(-1);
  }
}

describe("the rules", () => {
  it("finds whole and partial tags, not innocent words", () => {
    expect(findTagFragment("a dog trendingoftext|>a wooden cliff", TAGS)).toBe(14);
    expect(findTagFragment("a dog …startoftext|startoftext|>an", TAGS)).toBe(7);
    expect(findTagFragment("a dog <|endof", TAGS)).toBe(6);
    expect(findTagFragment("a dog startoftext|>", TAGS)).toBe(6);
    expect(findTagFragment("a cat |> x", TAGS)).toBe(6);
    expect(findTagFragment("A dog ENDOFTEXT", TAGS)).toBe(6);
    expect(findTagFragment("a cat in a medieval wearingregtext|", TAGS)).toBe(30);
    expect(findTagFragment("a cat <|st", TAGS)).toBe(6);
    for (const fine of ["a dog at the start of the text", "context, textures | pipes", "a < b"])
      expect(findTagFragment(fine, TAGS)).toBe(-1);
    // A fragment that ends inside the subject is not the continuation's fault.
    expect(findTagFragment("notes on startoftext and more", TAGS, 25)).toBe(-1);
  });

  it("needs a word boundary except after scripts written without spaces", () => {
    expect(needsWordBoundary("a dog")).toBe(true);
    expect(needsWordBoundary("café")).toBe(true);
    expect(needsWordBoundary("Москва")).toBe(true);
    expect(needsWordBoundary("東京タワー")).toBe(false);
    expect(needsWordBoundary("富士山")).toBe(false);
    expect(needsWordBoundary("กรุงเทพ")).toBe(false);
    expect(needsWordBoundary("東京 tower")).toBe(true);
    expect(startsNewWord(" on a beach")).toBe(true);
    expect(startsNewWord(", at dusk")).toBe(true);
    expect(startsNewWord("mill")).toBe(false);
    expect(startsNewWord("3")).toBe(false);
  });

  it("masks tokens that would form a tag, and glued tokens at the first step", () => {
    const masks = tokenMasks(TAGS, [END_OF_TEXT_ID]);
    const id = (text: string) => {
      const ids = encodeText(text);
      expect(ids).toHaveLength(1);
      return ids[0] as number;
    };
    expect(masks.firstWord[id("mill")]).toBe(0);
    expect(masks.firstWord[id(" on")]).toBe(1);
    expect(masks.firstWord[id(",")]).toBe(1);
    expect(masks.firstWord[END_OF_TEXT_ID]).toBe(1);
    expect(masks.always[id("mill")]).toBe(1);
    expect(masks.after.get("<")?.[id("|")]).toBe(0);
    expect(masks.after.get("|")?.[id(">")]).toBe(0);
    expect(masks.always[id("|")]).toBe(1);
  });

  it("gives each (seed, row) its own stream", () => {
    const draws = (seed: number, index: number) =>
      Array.from(
        { length: 4 },
        (
          (random) => () =>
            random.next()
        )(rowRandom(seed, index)),
      );
    expect(draws(7, 0)).toEqual(draws(7, 0));
    expect(draws(7, 0)).not.toEqual(draws(7, 1));
    expect(draws(7, 1)).not.toEqual(draws(8, 0));
    expect(draws(0, 1)).not.toEqual(draws(1, 0));
  });
});

for (const [name, dir] of [
  ["tiny trained model", TINY],
  ["Hugging Face-layout fixture (random weights)", HF],
] as const) {
  describe(`clean output on the ${name}`, () => {
    let decoder: Gpt2OnnxDecoder;
    beforeAll(async () => {
      decoder = await Gpt2OnnxDecoder.load(dir);
    });
    afterAll(async () => {
      await decoder.close();
    });
    const generator = () => new OnnxPromptGenerator(decoder, { sampling: SAMPLING });

    it("starts every continuation with a new word and never writes tag text", async () => {
      for (const subject of SUBJECTS) {
        for (const seed of [1, 2, 3, 11]) {
          expectClean(subject, await generator().generate({ subject, count: 16, seed }));
        }
      }
    });

    it("writes prompt i the same whatever the count", async () => {
      const request = { subject: "a lighthouse", seed: 7 };
      const one = await generator().generate({ ...request, count: 1 });
      const three = await generator().generate({ ...request, count: 3 });
      const eight = await generator().generate({ ...request, count: 8 });
      expect(three[0]).toEqual(one[0]);
      expect(eight.slice(0, 3)).toEqual(three);
      // Rows are not copies of one another.
      expect(new Set(eight.map((p) => p.text)).size).toBeGreaterThan(1);
    });

    it("continues a subject in a script without spaces", async () => {
      const prompts = await generator().generate({ subject: "東京タワー", count: 4, seed: 1 });
      for (const prompt of prompts) expect(prompt.text.startsWith("東京タワー")).toBe(true);
    });
  });
}

/**
 * A decoder whose logits follow a script: at new-token position p the scripted token scores
 * 10, the fallbacks 5 and 4, everything else 0. It knows nothing of ONNX; the generator only
 * uses step, emptyCache, selectRows and model.
 */
function scriptedDecoder(
  script: string[],
  fallbacks: string[],
  tags: { start: string; end: string } | null,
): Gpt2OnnxDecoder {
  const vocab = 50257;
  const ids = (text: string) => {
    const encoded = encodeText(text);
    if (encoded.length !== 1) throw new Error(`"${text}" is ${encoded.length} tokens`);
    return encoded[0] as number;
  };
  const scripted = script.map((text) => (text === "<END>" ? END_OF_TEXT_ID : ids(text)));
  const fallbackIds = fallbacks.map(ids);
  let prefixLength = 0;
  type FakeCache = { batch: number; length: number; rows: number[][] };
  const fake = {
    model: {
      dir: "scripted",
      metadata: {
        architecture: {
          type: "gpt2",
          vocabSize: vocab,
          nPositions: 64,
          nEmbd: 8,
          nLayer: 1,
          nHead: 1,
        },
        tags,
        meanCaptionTokens: script.length,
      },
    },
    emptyCache: (batch: number): FakeCache => ({ batch, length: 0, rows: [] }),
    selectRows: (cache: FakeCache, rows: number[]): FakeCache => ({
      batch: rows.length,
      length: cache.length,
      rows: rows.map((r) => [...(cache.rows[r] as number[])]),
    }),
    step: async (tokens: number[][], cache: FakeCache) => {
      if (cache.length === 0) prefixLength = tokens[0]?.length ?? 0;
      const rows = tokens.map((t, r) => [...(cache.rows[r] ?? []), ...t]);
      const lastLogits = new Float32Array(rows.length * vocab);
      rows.forEach((history, r) => {
        const position = history.length - prefixLength;
        const wanted = scripted[position];
        if (wanted !== undefined) lastLogits[r * vocab + wanted] = 10;
        fallbackIds.forEach((id, k) => {
          lastLogits[r * vocab + id] = 5 - k;
        });
      });
      return {
        lastLogits,
        vocab,
        cache: { batch: rows.length, length: cache.length + (tokens[0]?.length ?? 0), rows },
      };
    },
    close: async () => {},
  };
  return fake as unknown as Gpt2OnnxDecoder;
}

describe("clean output against a decoder that tries to break it", () => {
  const greedy = { temperature: 0, topK: 50, topP: 1, repetitionPenalty: 1 };
  const tags = { start: "<|startoftext|>", end: "<|endoftext|>" };

  it("does not glue the first token onto the subject", async () => {
    const decoder = scriptedDecoder(["mill", " on", " the", " beach", "<END>"], [" at"], tags);
    const [prompt] = await new OnnxPromptGenerator(decoder, { sampling: greedy }).generate({
      subject: "a dog",
      count: 1,
      seed: 1,
    });
    // "mill" was masked at the first step; the best word start (" at") came instead.
    expect(prompt?.text).toBe("a dog at on the beach");
    expect(prompt?.complete).toBe(true);
  });

  it("lets a subject in a script without spaces continue directly", async () => {
    const decoder = scriptedDecoder(["mill", "<END>"], [" at"], tags);
    const [prompt] = await new OnnxPromptGenerator(decoder, { sampling: greedy }).generate({
      subject: "東京",
      count: 1,
      seed: 1,
    });
    expect(prompt?.text).toBe("東京mill");
  });

  it("never forms a tag's punctuation and cuts at a spelled-out tag word", async () => {
    const script = [" trending", "<", "|", "start", "of", "text", "|", ">", " a", " cliff"];
    const decoder = scriptedDecoder(script, [" art", " x"], tags);
    const [prompt] = await new OnnxPromptGenerator(decoder, { sampling: greedy }).generate({
      subject: "a dog",
      count: 1,
      seed: 1,
    });
    // "<" is allowed, "|" after it is not (" art" instead); " artstartoftext" is then cut
    // away whole, from the start of the word that holds the fragment.
    expect(prompt?.text).toBe("a dog trending<");
    expect(prompt?.complete).toBe(false);
    expect(findTagFragment(prompt?.text ?? "", TAGS)).toBe(-1);
  });

  it("cuts a glued tag word out of an untagged model's continuation too", async () => {
    const script = [" sunset", " over", "of", "text", " ocean", " waves"];
    const decoder = scriptedDecoder(script, [" art"], null);
    const [prompt] = await new OnnxPromptGenerator(decoder, { sampling: greedy }).generate({
      subject: "a beach",
      count: 1,
      seed: 1,
    });
    expect(prompt?.text).toBe("a beach sunset");
    expect(prompt?.tokens).toBe(4);
    expect(decodeTokens(encodeText(prompt?.text ?? ""))).toBe(prompt?.text);
  });
});
