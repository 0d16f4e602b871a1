/**
 * The ONNX prompt engine against a Hugging Face optimum-style merged decoder
 * (test/fixtures/hf-merged-gpt2, made by training/make_hf_style_fixture.py): a tiny random GPT-2
 * whose decoder_model_merged.onnx has no position_ids input (positions come from attention_mask
 * inside the graph) and a bool use_cache_branch input that drives an If node between the
 * with-past and the no-past computation. golden.json holds PyTorch's reference values.
 */
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";
import { encodeText } from "../../src/core/prompt/tokenizer.js";
import { float32FromBase64, greedyThroughCache, maxAbsDiff } from "../helpers/golden.js";

const FIXTURE_DIR = resolve(import.meta.dirname, "..", "fixtures", "hf-merged-gpt2");
const ONNX_FILE = "decoder_model_merged.onnx";
const TOLERANCE = 1e-4;
const SAMPLING = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };

interface Golden {
  inputIds: number[];
  lastLogitsBase64: string;
  greedy: { steps: number; tokens: number[]; logits: number[] };
}

let decoder: Gpt2OnnxDecoder;
let golden: Golden;
let reference: Float32Array;

beforeAll(async () => {
  decoder = await Gpt2OnnxDecoder.load(FIXTURE_DIR);
  golden = JSON.parse(await readFile(join(FIXTURE_DIR, "golden.json"), "utf8")) as Golden;
  reference = float32FromBase64(golden.lastLogitsBase64);
});

afterAll(async () => {
  await decoder.close();
});

describe("the fixture is an optimum-style merged decoder", () => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(join(FIXTURE_DIR, ONNX_FILE));
  });
  afterAll(async () => {
    await session.release();
  });

  /** Raw feeds for one row, with past tensors of `pastLength` filled with `pastFill`. */
  function feeds(ids: number[], mask: number[], useCache: boolean, pastLength = 0, pastFill = 0) {
    const { nHead, headDim, nLayer } = decoder;
    const result: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      attention_mask: new ort.Tensor("int64", BigInt64Array.from(mask.map(BigInt)), [
        1,
        mask.length,
      ]),
      use_cache_branch: new ort.Tensor("bool", new Uint8Array([useCache ? 1 : 0]), [1]),
    };
    const past = () =>
      new ort.Tensor("float32", new Float32Array(nHead * pastLength * headDim).fill(pastFill), [
        1,
        nHead,
        pastLength,
        headDim,
      ]);
    for (let layer = 0; layer < nLayer; layer++) {
      result[`past_key_values.${layer}.key`] = past();
      result[`past_key_values.${layer}.value`] = past();
    }
    return result;
  }

  function lastRow(logits: ort.Tensor): Float32Array {
    const [, seq, vocab] = logits.dims as [number, number, number];
    return (logits.data as Float32Array).subarray((seq - 1) * vocab, seq * vocab);
  }

  it("has optimum's inputs: no position_ids, a bool use_cache_branch of shape [1]", () => {
    expect(session.inputNames).toEqual([
      "input_ids",
      "attention_mask",
      "past_key_values.0.key",
      "past_key_values.0.value",
      "past_key_values.1.key",
      "past_key_values.1.value",
      "use_cache_branch",
    ]);
    expect(session.outputNames).toEqual([
      "logits",
      "present.0.key",
      "present.0.value",
      "present.1.key",
      "present.1.value",
    ]);
    const branch = session.inputMetadata.find((m) => m.name === "use_cache_branch");
    expect(branch).toMatchObject({ isTensor: true, type: "bool", shape: [1] });
  });

  it("ignores the past's contents when use_cache_branch is false", async () => {
    const ids = golden.inputIds;
    const ones = ids.map(() => 1);
    // A dummy one-position past full of garbage: the no-past branch must not read it.
    const outputs = await session.run(feeds(ids, ones, false, 1, 123.5));
    expect(maxAbsDiff(lastRow(outputs.logits as ort.Tensor), reference)).toBeLessThan(TOLERANCE);
    expect((outputs["present.0.key"] as ort.Tensor).dims).toEqual([
      1,
      decoder.nHead,
      ids.length,
      decoder.headDim,
    ]);
  });

  it("reads the past when use_cache_branch is true (the If really switches)", async () => {
    const ids = golden.inputIds;
    const outputs = await session.run(feeds(ids, [1, ...ids.map(() => 1)], true, 1, 123.5));
    expect(maxAbsDiff(lastRow(outputs.logits as ort.Tensor), reference)).toBeGreaterThan(1e-2);
    expect((outputs["present.0.key"] as ort.Tensor).dims[2]).toBe(ids.length + 1);
  });

  it("computes positions from attention_mask, so left padding does not shift them", async () => {
    const ids = [50256, 50256, ...golden.inputIds];
    const mask = [0, 0, ...golden.inputIds.map(() => 1)];
    const outputs = await session.run(feeds(ids, mask, false));
    expect(maxAbsDiff(lastRow(outputs.logits as ort.Tensor), reference)).toBeLessThan(TOLERANCE);
  });
});

describe("Gpt2OnnxDecoder on the merged decoder", () => {
  it("finds decoder_model_merged.onnx when imagine-model.json names no file", async () => {
    const metadata = JSON.parse(await readFile(join(FIXTURE_DIR, "imagine-model.json"), "utf8"));
    expect(metadata.onnx).toBeUndefined();
    expect(basename(decoder.model.onnxPath)).toBe(ONNX_FILE);
    expect(decoder.model.onnxPath).toBe(join(FIXTURE_DIR, ONNX_FILE));
    expect([decoder.nLayer, decoder.nHead, decoder.headDim]).toEqual([2, 2, 4]);
  });

  it("the golden prompt is how the tokenizer encodes 'a lighthouse on a cliff'", () => {
    expect(encodeText("a lighthouse on a cliff")).toEqual(golden.inputIds);
  });

  it("matches PyTorch's last-position logits on the first step (empty past, no cache branch)", async () => {
    const { lastLogits, vocab, cache } = await decoder.step(
      [golden.inputIds],
      decoder.emptyCache(1),
    );
    expect(vocab).toBe(50257);
    expect(maxAbsDiff(lastLogits, reference)).toBeLessThan(TOLERANCE);
    expect(cache.length).toBe(golden.inputIds.length);
    expect(cache.keys[0]?.dims).toEqual([1, 2, golden.inputIds.length, 4]);
  });

  it("reproduces PyTorch's greedy continuation through the KV cache (cache branch)", async () => {
    const {
      tokens,
      chosen,
      last: step,
    } = await greedyThroughCache(decoder, golden.inputIds, golden.greedy.steps);
    expect(tokens).toEqual(golden.greedy.tokens);
    expect(maxAbsDiff(chosen, golden.greedy.logits)).toBeLessThan(TOLERANCE);
    expect(step.cache.length).toBe(golden.inputIds.length + golden.greedy.steps);
  });

  it("gives a full recomputation's logits when the prompt is fed through the cache", async () => {
    const ids = golden.inputIds;
    let step = await decoder.step([ids.slice(0, 2)], decoder.emptyCache(1));
    for (let i = 2; i < ids.length; i++)
      step = await decoder.step([[ids[i] as number]], step.cache);
    expect(maxAbsDiff(step.lastLogits, reference)).toBeLessThan(TOLERANCE);
  });

  it("keeps batch rows independent on the cache branch", async () => {
    const prefix = golden.inputIds.slice(0, 3);
    const first = await decoder.step([prefix], decoder.emptyCache(1));
    const nextTokens = [11, 257, 286];
    const batched = await decoder.step(
      nextTokens.map((t) => [t]),
      decoder.selectRows(first.cache, [0, 0, 0]),
    );
    for (const [row, token] of nextTokens.entries()) {
      const alone = await decoder.step([[...prefix, token]], decoder.emptyCache(1));
      const rowLogits = batched.lastLogits.subarray(row * batched.vocab, (row + 1) * batched.vocab);
      expect(maxAbsDiff(rowLogits, alone.lastLogits)).toBeLessThan(TOLERANCE);
    }
  });
});

describe("OnnxPromptGenerator on the merged decoder", () => {
  const generator = () => new OnnxPromptGenerator(decoder, { sampling: SAMPLING });

  it("writes prompts that start with the subject, the same for the same seed", async () => {
    const request = { subject: "a lighthouse", count: 4, seed: 1 };
    const first = await generator().generate(request);
    const second = await generator().generate(request);
    expect(second).toEqual(first);
    expect(first).toHaveLength(4);
    for (const prompt of first) {
      expect(prompt.text.startsWith("a lighthouse")).toBe(true);
      expect(prompt.text.length).toBeGreaterThan("a lighthouse".length);
      // Untagged model: never "complete"; capped at meanCaptionTokens (8) new tokens.
      expect(prompt.complete).toBe(false);
      expect(prompt.tokens).toBeGreaterThan(0);
      expect(prompt.tokens).toBeLessThanOrEqual(8);
    }
    const other = await generator().generate({ ...request, seed: 2 });
    expect(other.map((p) => p.text)).not.toEqual(first.map((p) => p.text));
  });
});
