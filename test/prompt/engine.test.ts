/**
 * The ONNX prompt engine against the tiny GPT-2 that training/ trains and exports
 * (models/tiny-caption-gpt2). golden.json holds PyTorch's logits and greedy continuation, so
 * these tests check onnxruntime-node's output against the reference implementation.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../../src/core/errors.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";
import { END_OF_TEXT_ID } from "../../src/core/prompt/tokenizer.js";
import { expectGoldenGreedy, float32FromBase64, maxAbsDiff } from "../helpers/golden.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "..", "models", "tiny-caption-gpt2");
const TOLERANCE = 1e-4;
const SAMPLING = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };

interface Golden {
  inputIds: number[];
  logits: { positions: number[]; tokenIds: number[]; values: number[][] };
  lastLogitsBase64: string;
  greedy: { steps: number; tokens: number[]; logits: number[] };
}

let decoder: Gpt2OnnxDecoder;
let golden: Golden;
let scratch: string;

beforeAll(async () => {
  decoder = await Gpt2OnnxDecoder.load(MODEL_DIR);
  golden = JSON.parse(await readFile(join(MODEL_DIR, "golden.json"), "utf8")) as Golden;
  scratch = await mkdtemp(join(tmpdir(), "imagine-engine-"));
});

afterAll(async () => {
  await decoder.close();
  await rm(scratch, { recursive: true, force: true });
});

describe("ONNX decoder against PyTorch's golden fixture", () => {
  it("matches the logits at every recorded position", async () => {
    for (const [k, position] of golden.logits.positions.entries()) {
      const { lastLogits } = await decoder.step(
        [golden.inputIds.slice(0, position + 1)],
        decoder.emptyCache(1),
      );
      const ours = golden.logits.tokenIds.map((id) => lastLogits[id] as number);
      expect(maxAbsDiff(ours, golden.logits.values[k] as number[])).toBeLessThan(TOLERANCE);
    }
  });

  it("matches the full-vocabulary logits of the last position", async () => {
    const { lastLogits, vocab } = await decoder.step([golden.inputIds], decoder.emptyCache(1));
    const reference = float32FromBase64(golden.lastLogitsBase64);
    expect(vocab).toBe(50257);
    expect(maxAbsDiff(lastLogits, reference)).toBeLessThan(TOLERANCE);
  });

  it("reproduces the greedy continuation through the KV cache", async () => {
    await expectGoldenGreedy(decoder, golden, TOLERANCE);
  });
});

describe("KV cache", () => {
  it("gives the logits of a full recomputation, one token at a time", async () => {
    const ids = golden.inputIds;
    let step = await decoder.step([ids.slice(0, 3)], decoder.emptyCache(1));
    for (let i = 3; i < ids.length; i++)
      step = await decoder.step([[ids[i] as number]], step.cache);
    const full = await decoder.step([ids], decoder.emptyCache(1));
    expect(step.cache.length).toBe(ids.length);
    expect(maxAbsDiff(step.lastLogits, full.lastLogits)).toBeLessThan(TOLERANCE);
  });

  it("keeps batch rows independent when repeated and when rows are dropped", async () => {
    const prefix = golden.inputIds.slice(0, 5);
    const first = await decoder.step([prefix], decoder.emptyCache(1));
    const nextTokens = [11, 257, 286];
    const batched = await decoder.step(
      nextTokens.map((t) => [t]),
      decoder.selectRows(first.cache, [0, 0, 0]),
    );
    const vocab = batched.vocab;
    for (const [row, token] of nextTokens.entries()) {
      const alone = await decoder.step([[...prefix, token]], decoder.emptyCache(1));
      expect(
        maxAbsDiff(batched.lastLogits.subarray(row * vocab, (row + 1) * vocab), alone.lastLogits),
      ).toBeLessThan(TOLERANCE);
    }
    // Drop the middle row and reorder: rows 2 and 0 continue, with their own histories.
    const kept = decoder.selectRows(batched.cache, [2, 0]);
    const after = await decoder.step([[13], [13]], kept);
    const aloneLast = await decoder.step([[...prefix, 286, 13]], decoder.emptyCache(1));
    const aloneFirst = await decoder.step([[...prefix, 11, 13]], decoder.emptyCache(1));
    expect(maxAbsDiff(after.lastLogits.subarray(0, vocab), aloneLast.lastLogits)).toBeLessThan(
      TOLERANCE,
    );
    expect(maxAbsDiff(after.lastLogits.subarray(vocab), aloneFirst.lastLogits)).toBeLessThan(
      TOLERANCE,
    );
  });
});

describe("OnnxPromptGenerator", () => {
  const generator = () => new OnnxPromptGenerator(decoder, { sampling: SAMPLING });

  it("writes complete prompts that start with the subject, the same for the same seed", async () => {
    const request = { subject: "a lighthouse", count: 5, seed: 1 };
    const first = await generator().generate(request);
    const second = await generator().generate(request);
    expect(second).toEqual(first);
    expect(first).toHaveLength(5);
    for (const prompt of first) {
      expect(prompt.text.startsWith("a lighthouse")).toBe(true);
      expect(prompt.text.length).toBeGreaterThan("a lighthouse".length);
      expect(prompt.text).not.toContain("<|endoftext|>");
      expect(prompt.text).not.toContain("<|startoftext|>");
    }
    // The tiny model learned to close its captions: nearly all reach the end tag.
    expect(first.filter((p) => p.complete).length).toBeGreaterThanOrEqual(4);
    const other = await generator().generate({ ...request, seed: 2 });
    expect(other.map((p) => p.text)).not.toEqual(first.map((p) => p.text));
  });

  it("respects the token cap and marks cut prompts incomplete", async () => {
    const prompts = await generator().generate({
      subject: "a red fox",
      count: 3,
      seed: 4,
      maxNewTokens: 2,
    });
    for (const prompt of prompts) {
      expect(prompt.tokens).toBeLessThanOrEqual(2);
      if (prompt.tokens === 2) expect(prompt.complete).toBe(false);
    }
  });

  it("caps new tokens at the model's own maxNewTokens when imagine-model.json sets one", async () => {
    const dir = join(scratch, "capped");
    await cp(MODEL_DIR, dir, { recursive: true });
    const metadataPath = join(dir, "imagine-model.json");
    const metadata = JSON.parse(await readFile(metadataPath, "utf8"));
    await writeFile(metadataPath, JSON.stringify({ ...metadata, maxNewTokens: 3 }));
    const capped = await Gpt2OnnxDecoder.load(dir);
    try {
      const own = new OnnxPromptGenerator(capped, { sampling: SAMPLING });
      expect(own.defaultMaxNewTokens).toBe(3);
      const prompts = await own.generate({ subject: "a lighthouse", count: 4, seed: 1 });
      for (const prompt of prompts) expect(prompt.tokens).toBeLessThanOrEqual(3);
      // The arm's own setting still wins.
      const arm = new OnnxPromptGenerator(capped, { sampling: SAMPLING, maxNewTokens: 5 });
      expect(arm.defaultMaxNewTokens).toBe(5);
      expect(generator().defaultMaxNewTokens).toBe(Math.ceil(metadata.meanCaptionTokens));
    } finally {
      await capped.close();
    }
  });

  it("gives the same prompts whether requests run one by one or concurrently", async () => {
    const shared = generator();
    const requests = [1, 2, 3].map((seed) => ({ subject: "an old castle", count: 2, seed }));
    const sequential = [];
    for (const request of requests) sequential.push(await shared.generate(request));
    const concurrent = await Promise.all(requests.map((request) => shared.generate(request)));
    expect(concurrent).toEqual(sequential);
  });

  it("stops when the signal aborts", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      generator().generate({
        subject: "a lighthouse",
        count: 2,
        seed: 1,
        signal: controller.signal,
      }),
    ).rejects.toMatchObject({ code: "ABORTED" });
  });

  it("continues an untagged model's subject for the capped number of tokens, never 'complete'", async () => {
    const dir = join(scratch, "untagged");
    await cp(MODEL_DIR, dir, { recursive: true });
    const metadataPath = join(dir, "imagine-model.json");
    const metadata = JSON.parse(await readFile(metadataPath, "utf8"));
    await writeFile(
      metadataPath,
      JSON.stringify({ ...metadata, tags: null, meanCaptionTokens: 6 }),
    );
    const untagged = await Gpt2OnnxDecoder.load(dir);
    try {
      const prompts = await new OnnxPromptGenerator(untagged, { sampling: SAMPLING }).generate({
        subject: "a lighthouse",
        count: 4,
        seed: 1,
      });
      for (const prompt of prompts) {
        expect(prompt.complete).toBe(false);
        expect(prompt.text.startsWith("a lighthouse")).toBe(true);
        expect(prompt.tokens).toBeLessThanOrEqual(6);
      }
      // Without a tag, only GPT-2's own end of text ends a row early.
      expect(prompts.every((p) => p.tokens === 6 || p.tokens < 6)).toBe(true);
    } finally {
      await untagged.close();
    }
  });
});

describe("model directory errors", () => {
  async function copyWith(name: string, change: (metadata: Record<string, unknown>) => unknown) {
    const dir = join(scratch, name);
    await cp(MODEL_DIR, dir, { recursive: true });
    const path = join(dir, "imagine-model.json");
    await writeFile(path, JSON.stringify(change(JSON.parse(await readFile(path, "utf8")))));
    return dir;
  }

  it("names the missing directory", async () => {
    await expect(Gpt2OnnxDecoder.load(join(scratch, "absent"))).rejects.toThrow(/does not exist/);
  });

  it("names a missing imagine-model.json and shows what to write", async () => {
    const dir = join(scratch, "no-metadata");
    await cp(MODEL_DIR, dir, { recursive: true });
    await rm(join(dir, "imagine-model.json"));
    await expect(Gpt2OnnxDecoder.load(dir)).rejects.toThrow(
      /imagine-model\.json is missing.*"format":"imagine-bot\/model"/,
    );
  });

  it("rejects metadata that disagrees with the graph", async () => {
    const dir = await copyWith("wrong-layers", (m) => ({
      ...m,
      architecture: { ...(m.architecture as object), nLayer: 7 },
    }));
    const error = await Gpt2OnnxDecoder.load(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error).toMatchObject({ code: "MODEL_INCONSISTENT" });
    expect(String(error)).toMatch(/past_key_values\.6\.key/);
  });

  it("rejects invalid metadata and a missing ONNX file", async () => {
    const bad = await copyWith("bad-metadata", (m) => ({ ...m, meanCaptionTokens: -1 }));
    await expect(Gpt2OnnxDecoder.load(bad)).rejects.toThrow(/meanCaptionTokens/);
    const noOnnx = await copyWith("no-onnx", (m) => ({ ...m, onnx: "missing.onnx" }));
    await expect(Gpt2OnnxDecoder.load(noOnnx)).rejects.toThrow(/missing\.onnx.*does not exist/);
  });

  it("the end tag used by the tiny model is GPT-2's end of text", async () => {
    const metadata = JSON.parse(await readFile(join(MODEL_DIR, "imagine-model.json"), "utf8"));
    expect(metadata.tags.end).toBe("<|endoftext|>");
    expect(END_OF_TEXT_ID).toBe(50256);
  });
});
