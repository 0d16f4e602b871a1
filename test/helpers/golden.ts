/** Comparing onnxruntime-node's output with the golden values PyTorch wrote (training/export_onnx.py). */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect } from "vitest";
import { type DecoderStep, Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { argmax } from "../../src/core/prompt/sampler.js";

/** The largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  }
  return max;
}

/** Little-endian float32 values stored as base64 in golden.json. */
export function float32FromBase64(base64: string): Float32Array {
  const bytes = Buffer.from(base64, "base64");
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Greedy decoding one token per step through the KV cache, as the golden continuation was made. */
export async function greedyThroughCache(
  decoder: Gpt2OnnxDecoder,
  inputIds: number[],
  steps: number,
): Promise<{ tokens: number[]; chosen: number[]; last: DecoderStep }> {
  let step = await decoder.step([inputIds], decoder.emptyCache(1));
  const tokens: number[] = [];
  const chosen: number[] = [];
  for (let i = 0; i < steps; i++) {
    const token = argmax(step.lastLogits);
    tokens.push(token);
    chosen.push(step.lastLogits[token] as number);
    step = await decoder.step([[token]], step.cache);
  }
  return { tokens, chosen, last: step };
}

/** What a fixture's golden.json says of a prefix: its last-position logits, its greedy continuation. */
export interface DecoderGolden {
  inputIds: number[];
  lastLogitsBase64: string;
  greedy: { steps: number; tokens: number[]; logits: number[] };
}

/** The decoder's first step and its greedy continuation through the KV cache match `golden`. */
export async function expectGoldenDecoding(
  decoder: Gpt2OnnxDecoder,
  golden: DecoderGolden,
  tolerance: number,
): Promise<void> {
  const { lastLogits } = await decoder.step([golden.inputIds], decoder.emptyCache(1));
  expect(maxAbsDiff(lastLogits, float32FromBase64(golden.lastLogitsBase64))).toBeLessThan(
    tolerance,
  );
  await expectGoldenGreedy(decoder, golden, tolerance);
}

/** The decoder's greedy continuation through the KV cache chooses `golden`'s tokens and logits. */
export async function expectGoldenGreedy(
  decoder: Gpt2OnnxDecoder,
  golden: Pick<DecoderGolden, "inputIds" | "greedy">,
  tolerance: number,
): Promise<void> {
  const { tokens, chosen } = await greedyThroughCache(
    decoder,
    golden.inputIds,
    golden.greedy.steps,
  );
  expect(tokens).toEqual(golden.greedy.tokens);
  expect(maxAbsDiff(chosen, golden.greedy.logits)).toBeLessThan(tolerance);
}

/**
 * A tiny random GPT-2 (seed 7) exported by training/export_onnx.py with `flags` into a new folder
 * under the system's temp folder (`scratch`: the caller removes it), its golden.json and the
 * decoder loaded on one thread.
 */
export async function exportTinyDecoder(
  flags: string[],
): Promise<{ scratch: string; decoder: Gpt2OnnxDecoder; golden: DecoderGolden }> {
  const scratch = await mkdtemp(join(tmpdir(), "imagine-export-"));
  const dir = join(scratch, "model");
  try {
    execFileSync(
      "/usr/bin/python3",
      [
        resolve(import.meta.dirname, "..", "..", "training", "export_onnx.py"),
        ...["--random", "tiny", "--seed", "7", "--mean-caption-tokens", "12"],
        ...[...flags, "--out", dir],
      ],
      { stdio: ["ignore", "ignore", "pipe"] }, // a failed export's stderr goes into the error
    );
    const golden = JSON.parse(await readFile(join(dir, "golden.json"), "utf8")) as DecoderGolden;
    return { scratch, decoder: await Gpt2OnnxDecoder.load(dir, { threads: 1 }), golden };
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
}
