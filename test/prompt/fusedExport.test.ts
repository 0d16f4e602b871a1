/**
 * training/export_onnx.py --fused-attention: each block's attention core and KV-cache append as
 * one com.microsoft MultiHeadAttention node. Exported here from a tiny random GPT-2 with its
 * PyTorch golden fixture, then run by onnxruntime-node: the fused graph must give PyTorch's
 * logits (the same 1e-4 as the plain export), through the cache and across batch rows.
 */
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { summarizeOnnxGraph } from "../../bench/lib/onnxGraph.js";
import type { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import {
  type DecoderGolden,
  expectGoldenGreedy,
  exportTinyDecoder,
  float32FromBase64,
  maxAbsDiff,
} from "../helpers/golden.js";

const TOLERANCE = 1e-4;

let scratch: string;
let decoder: Gpt2OnnxDecoder;
let golden: DecoderGolden;

beforeAll(async () => {
  ({ scratch, decoder, golden } = await exportTinyDecoder(["--fused-attention"]));
}, 60_000);

afterAll(async () => {
  await decoder?.close();
  await rm(scratch, { recursive: true, force: true });
});

describe("fused-attention export against PyTorch's golden fixture", () => {
  it("has one MultiHeadAttention per block and no cache Concat", () => {
    const { nodes } = summarizeOnnxGraph(decoder.model.onnxPath);
    const attention = nodes.filter((n) => n.opType === "MultiHeadAttention");
    expect(attention).toHaveLength(2);
    expect(attention.every((n) => n.domain === "com.microsoft")).toBe(true);
    expect(nodes.filter((n) => n.opType === "Softmax")).toHaveLength(0);
    expect(nodes.some((n) => n.opType === "Concat" && n.outputs[0]?.startsWith("present."))).toBe(
      false,
    );
  });

  it("matches the full-vocabulary logits of the last position", async () => {
    const { lastLogits } = await decoder.step([golden.inputIds], decoder.emptyCache(1));
    expect(maxAbsDiff(lastLogits, float32FromBase64(golden.lastLogitsBase64))).toBeLessThan(
      TOLERANCE,
    );
  });

  it("reproduces the greedy continuation through the KV cache", async () => {
    await expectGoldenGreedy(decoder, golden, TOLERANCE);
  });

  it("keeps batch rows independent", async () => {
    const prefix = golden.inputIds.slice(0, 5);
    const first = await decoder.step([prefix], decoder.emptyCache(1));
    const batched = await decoder.step([[11], [286]], decoder.selectRows(first.cache, [0, 0]));
    for (const [row, token] of [11, 286].entries()) {
      const alone = await decoder.step([[...prefix, token]], decoder.emptyCache(1));
      const slice = batched.lastLogits.subarray(row * batched.vocab, (row + 1) * batched.vocab);
      expect(maxAbsDiff(slice, alone.lastLogits)).toBeLessThan(TOLERANCE);
    }
  });
});
