/**
 * Weight-only quantized copies (training/export_onnx.py --from-onnx DIR --quant int8|int4) of the
 * tiny test model, run by onnxruntime-node's MatMulNBits, against PyTorch's float32 golden fixture;
 * and the graph scanner that bench/prompt.ts divides by (bytes each decode step streams).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { summarizeOnnxGraph } from "../../bench/lib/onnxGraph.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { argmax } from "../../src/core/prompt/sampler.js";
import { float32FromBase64, maxAbsDiff } from "../helpers/golden.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const MODEL_DIR = join(ROOT, "models", "tiny-caption-gpt2");

interface Golden {
  inputIds: number[];
  lastLogitsBase64: string;
  greedy: { steps: number; tokens: number[]; logits: number[] };
}

let scratch: string;
let golden: Golden;
const dirs: Record<"int8" | "int4", string> = { int8: "", int4: "" };

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "imagine-quant-"));
  golden = JSON.parse(await readFile(join(MODEL_DIR, "golden.json"), "utf8")) as Golden;
  for (const quant of ["int8", "int4"] as const) {
    dirs[quant] = join(scratch, quant);
    execFileSync(
      "/usr/bin/python3",
      [
        join(ROOT, "training", "export_onnx.py"),
        "--from-onnx",
        MODEL_DIR,
        "--quant",
        quant,
        "--out",
        dirs[quant],
      ],
      { stdio: "ignore" },
    );
  }
}, 60_000);

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe("quantized decoders against PyTorch's float32 golden fixture", () => {
  // Logits of this model span about ±12; a misplaced nibble or scale would move them by whole units.
  // The continuation is teacher-forced along PyTorch's greedy tokens: a free-running greedy run
  // diverges for good at the first near-tie that quantization flips, so its common prefix
  // measured tie luck more than the weights (7 to 16 tokens for equally close int4 exports).
  for (const [quant, tolerance, pathTolerance, sameTop1] of [
    ["int8", 0.1, 0.05, 16],
    ["int4", 1.5, 0.5, 15],
  ] as const) {
    it(`${quant}: last-position logits close to float32, and PyTorch's greedy path kept through the cache`, async () => {
      const decoder = await Gpt2OnnxDecoder.load(dirs[quant], { threads: 1 });
      try {
        let step = await decoder.step([golden.inputIds], decoder.emptyCache(1));
        expect(
          maxAbsDiff(step.lastLogits, float32FromBase64(golden.lastLogitsBase64)),
        ).toBeLessThan(tolerance);
        let sameTop = 0;
        for (let i = 0; i < golden.greedy.steps; i++) {
          const token = golden.greedy.tokens[i] as number;
          if (argmax(step.lastLogits) === token) sameTop++;
          expect(
            Math.abs((step.lastLogits[token] as number) - (golden.greedy.logits[i] as number)),
          ).toBeLessThan(pathTolerance);
          step = await decoder.step([[token]], step.cache);
        }
        expect(sameTop).toBeGreaterThanOrEqual(sameTop1);
      } finally {
        await decoder.close();
      }
    });
  }

  it("batched rows of a quantized decoder match the same rows decoded alone", async () => {
    const decoder = await Gpt2OnnxDecoder.load(dirs.int4, { threads: 1 });
    try {
      const prefix = golden.inputIds.slice(0, 5);
      const first = await decoder.step([prefix], decoder.emptyCache(1));
      const batched = await decoder.step([[11], [286]], decoder.selectRows(first.cache, [0, 0]));
      const alone = await decoder.step([[...prefix, 286]], decoder.emptyCache(1));
      // accuracy_level 4 quantizes activations per row block, so batching changes nothing.
      expect(maxAbsDiff(batched.lastLogits.subarray(batched.vocab), alone.lastLogits)).toBeLessThan(
        1e-3,
      );
    } finally {
      await decoder.close();
    }
  });
});

describe("bytes streamed per decode step, counted from the graph", () => {
  it("counts every dense weight and lm_head, not the position embedding only a Gather reads", () => {
    const graph = summarizeOnnxGraph(join(MODEL_DIR, "model.onnx"));
    const names = new Set(graph.streamed.map((t) => t.name));
    // Tied embedding: read whole by lm_head (through a Transpose), so it counts once.
    expect(names.has("model.transformer.wte.weight")).toBe(true);
    expect(names.has("model.transformer.wpe.weight")).toBe(false);
    for (const layer of [0, 1]) {
      for (const w of ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]) {
        expect(names.has(`model.transformer.h.${layer}.${w}.weight`)).toBe(true);
      }
    }
    const wpe = graph.initializers.get("model.transformer.wpe.weight");
    expect(wpe?.bytes).toBe(64 * 32 * 4);
    expect(graph.streamedBytes).toBe(graph.streamed.reduce((sum, t) => sum + t.bytes, 0));
    expect(graph.streamedBytes).toBeLessThanOrEqual(graph.initializerBytes - (wpe?.bytes ?? 0));
  });

  it("counts a quantized copy's codes, not the int8 embedding rows its GatherBlockQuantized reads", () => {
    const fp32 = summarizeOnnxGraph(join(MODEL_DIR, "model.onnx"));
    const int4 = summarizeOnnxGraph(join(dirs.int4, "model.onnx"));
    const names = new Set(int4.streamed.map((t) => t.name));
    expect(int4.initializers.has("model.transformer.wte.weight")).toBe(false);
    const gather = int4.nodes.find((n) => n.opType === "GatherBlockQuantized");
    expect(gather?.inputs[1]).toBe("input_ids");
    for (const input of gather?.inputs ?? []) expect(names.has(input)).toBe(false);
    expect(int4.nodes.filter((n) => n.opType === "MatMulNBits")).toHaveLength(9);
    // lm_head at int8 (1 byte + a 4-byte scale and 1-byte zero point per 32) dominates this model.
    expect(int4.streamedBytes).toBeLessThan(fp32.streamedBytes * 0.3);
    expect(int4.initializerBytes).toBeGreaterThan(int4.streamedBytes);
  });

  it("refuses a file that is not an ONNX model", () => {
    expect(() => summarizeOnnxGraph(join(MODEL_DIR, "imagine-model.json"))).toThrow();
  });
});
