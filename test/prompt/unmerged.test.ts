/**
 * training/export_onnx.py --from-onnx on a Hugging Face optimum-style merged decoder
 * (test/fixtures/hf-merged-gpt2): the with-past branch is inlined and the If dropped, so
 * onnxruntime holds one copy of the prepacked weights instead of one per branch. The unmerged
 * copy must still give PyTorch's golden logits (first step with an empty past included), alone
 * and quantized in the same conversion. unmergeOnnxDecoder does the same in TypeScript (no Python
 * needed where models are pulled), copying everything but the If byte for byte.
 */
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { summarizeOnnxGraph } from "../../bench/lib/onnxGraph.js";
import { Gpt2OnnxDecoder, unmergeOnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { type DecoderGolden, expectGoldenDecoding, greedyThroughCache } from "../helpers/golden.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const FIXTURE_DIR = join(ROOT, "test", "fixtures", "hf-merged-gpt2");
const TOLERANCE = 1e-4;

let scratch: string;
let golden: DecoderGolden;

function convert(out: string, ...extra: string[]): string {
  execFileSync(
    "/usr/bin/python3",
    [join(ROOT, "training", "export_onnx.py"), "--from-onnx", FIXTURE_DIR, "--out", out, ...extra],
    { stdio: "ignore" },
  );
  return out;
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "imagine-unmerged-"));
  golden = JSON.parse(await readFile(join(FIXTURE_DIR, "golden.json"), "utf8")) as DecoderGolden;
}, 60_000);

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe("an unmerged copy of a merged decoder", () => {
  it("has no If and no use_cache_branch, and gives PyTorch's logits through the cache", async () => {
    const dir = convert(join(scratch, "fp32"));
    const graph = summarizeOnnxGraph(join(dir, "model.onnx"));
    expect(graph.nodes.some((n) => n.opType === "If")).toBe(false);
    const session = await ort.InferenceSession.create(join(dir, "model.onnx"));
    expect(session.inputNames).not.toContain("use_cache_branch");
    await session.release();
    const decoder = await Gpt2OnnxDecoder.load(dir, { threads: 1 });
    try {
      await expectGoldenDecoding(decoder, golden, TOLERANCE);
    } finally {
      await decoder.close();
    }
    // Same weights, stored once: the merged file's initializers are all still there, no more.
    const merged = summarizeOnnxGraph(join(FIXTURE_DIR, "decoder_model_merged.onnx"));
    expect(graph.initializerBytes).toBeLessThanOrEqual(merged.initializerBytes);
    expect(graph.streamedBytes).toBe(merged.streamedBytes);
  });

  it("quantizes in the same conversion (the dense MatMuls were inside the If before)", async () => {
    const dir = convert(join(scratch, "int8"), "--quant", "int8");
    const graph = summarizeOnnxGraph(join(dir, "model.onnx"));
    expect(graph.nodes.filter((n) => n.opType === "MatMulNBits")).toHaveLength(9);
    const decoder = await Gpt2OnnxDecoder.load(dir, { threads: 1 });
    try {
      const { tokens } = await greedyThroughCache(decoder, golden.inputIds, 8);
      expect(tokens).toEqual(golden.greedy.tokens.slice(0, 8));
    } finally {
      await decoder.close();
    }
  });
});

describe("unmergeOnnxDecoder (TypeScript, on pull)", () => {
  it("writes a plain decoder that gives PyTorch's logits, and leaves a plain one alone", async () => {
    const dir = join(scratch, "ts");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    await copyFile(join(FIXTURE_DIR, "imagine-model.json"), join(dir, "imagine-model.json"));
    const target = join(dir, "model.onnx");
    expect(unmergeOnnxDecoder(join(FIXTURE_DIR, "decoder_model_merged.onnx"), target)).toBe(true);

    const graph = summarizeOnnxGraph(target);
    expect(graph.nodes.some((n) => n.opType === "If")).toBe(false);
    const merged = summarizeOnnxGraph(join(FIXTURE_DIR, "decoder_model_merged.onnx"));
    expect(graph.streamedBytes).toBe(merged.streamedBytes);
    const session = await ort.InferenceSession.create(target);
    expect(session.inputNames).not.toContain("use_cache_branch");
    expect(session.outputNames).toEqual([
      "logits",
      "present.0.key",
      "present.0.value",
      "present.1.key",
      "present.1.value",
    ]);
    await session.release();

    const decoder = await Gpt2OnnxDecoder.load(dir, { threads: 1 });
    try {
      expect(decoder.model.onnxPath).toBe(target);
      await expectGoldenDecoding(decoder, golden, TOLERANCE);
    } finally {
      await decoder.close();
    }
    // Already plain: nothing to do, nothing written.
    const again = join(dir, "again.onnx");
    expect(unmergeOnnxDecoder(target, again)).toBe(false);
    await expect(readFile(again)).rejects.toThrow();
  });

  it("moves the weights to an external-data file on request, with the same logits", async () => {
    const dir = join(scratch, "ts-external");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    await copyFile(join(FIXTURE_DIR, "imagine-model.json"), join(dir, "imagine-model.json"));
    const target = join(dir, "model.onnx");
    const source = join(FIXTURE_DIR, "decoder_model_merged.onnx");
    expect(unmergeOnnxDecoder(source, target, { externalData: "model.onnx.data" })).toBe(true);

    // The graph keeps only small tensors; the weights sit page-aligned in the data file.
    const graphBytes = (await stat(target)).size;
    const dataBytes = (await stat(join(dir, "model.onnx.data"))).size;
    expect(graphBytes).toBeLessThan(100_000);
    const merged = summarizeOnnxGraph(source);
    expect(dataBytes).toBeGreaterThanOrEqual(merged.initializerBytes - graphBytes);
    expect(summarizeOnnxGraph(target).streamedBytes).toBe(merged.streamedBytes);

    const decoder = await Gpt2OnnxDecoder.load(dir, { threads: 1 });
    try {
      await expectGoldenDecoding(decoder, golden, TOLERANCE);
    } finally {
      await decoder.close();
    }
    // The graph alone, without its weights file, fails with a message that says what is missing.
    await rm(join(dir, "model.onnx.data"));
    await expect(Gpt2OnnxDecoder.load(dir, { threads: 1 })).rejects.toThrow(
      /model\.onnx\.data.*copy it beside the \.onnx file/s,
    );
  });

  it("refuses a file that is not an ONNX model", () => {
    expect(() =>
      unmergeOnnxDecoder(join(FIXTURE_DIR, "imagine-model.json"), join(scratch, "x.onnx")),
    ).toThrow(/not an ONNX file|no ONNX graph/);
  });
});
