/**
 * training/export_onnx.py --kv-cache buffer: the graph returns only each step's keys and values
 * (new_key_values.N.*) and the engine keeps the past in buffers with room to grow, masked where
 * nothing is written yet. Exported here from a tiny random GPT-2 with its PyTorch golden fixture:
 * the engine must give PyTorch's logits through the cache (across several growths of the
 * buffers), keep batch rows apart, and keep every cache a value however it is stepped.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { summarizeOnnxGraph } from "../../bench/lib/onnxGraph.js";
import { type DecoderStep, Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";
import {
  type DecoderGolden,
  expectGoldenDecoding,
  exportTinyDecoder,
  maxAbsDiff,
} from "../helpers/golden.js";

const TOLERANCE = 1e-4;

let scratch: string;
let decoder: Gpt2OnnxDecoder;
let golden: DecoderGolden;

beforeAll(async () => {
  ({ scratch, decoder, golden } = await exportTinyDecoder(["--kv-cache", "buffer"]));
}, 60_000);

afterAll(async () => {
  await decoder?.close();
  await rm(scratch, { recursive: true, force: true });
});

/** The last-position logits of `ids` computed from scratch, one row. */
async function fresh(ids: number[]): Promise<Float32Array> {
  return (await decoder.step([ids], decoder.emptyCache(1))).lastLogits;
}

function row(step: DecoderStep, index: number): Float32Array {
  return step.lastLogits.subarray(index * step.vocab, (index + 1) * step.vocab);
}

describe("buffer-cache export", () => {
  it("returns this step's keys and values and concatenates no cache", () => {
    expect(decoder.buffersCache).toBe(true);
    const { nodes } = summarizeOnnxGraph(decoder.model.onnxPath);
    const pastInputs = nodes.filter((n) => n.inputs.some((i) => i.startsWith("past_key_values.")));
    expect(pastInputs.length).toBeGreaterThan(0);
    expect(pastInputs.some((n) => n.opType === "Concat")).toBe(false);
    expect(nodes.some((n) => n.outputs.some((o) => o.startsWith("present.")))).toBe(false);
  });

  it("matches PyTorch's logits and greedy continuation through the growing cache", async () => {
    // 12 prefix tokens + 16 steps: the buffers grow past 16 positions on the way.
    await expectGoldenDecoding(decoder, golden, TOLERANCE);
  });

  it("gives a full recomputation's logits one token at a time, across growths", async () => {
    const ids = [...golden.inputIds, ...golden.greedy.tokens, ...golden.inputIds];
    let step = await decoder.step([ids.slice(0, 1)], decoder.emptyCache(1));
    for (let i = 1; i < ids.length; i++) {
      step = await decoder.step([[ids[i] as number]], step.cache);
      if (i % 7 === 0 || i === ids.length - 1) {
        expect(maxAbsDiff(step.lastLogits, await fresh(ids.slice(0, i + 1)))).toBeLessThan(
          TOLERANCE,
        );
      }
    }
    expect(step.cache.length).toBe(ids.length);
    expect(step.cache.keys[0]?.dims[2]).toBeGreaterThanOrEqual(ids.length);
  });

  it("keeps batch rows independent when repeated, dropped and reordered", async () => {
    const prefix = golden.inputIds.slice(0, 5);
    const first = await decoder.step([prefix], decoder.emptyCache(1));
    const batched = await decoder.step(
      [[11], [257], [286]],
      decoder.selectRows(first.cache, [0, 0, 0]),
    );
    for (const [index, token] of [11, 257, 286].entries()) {
      expect(maxAbsDiff(row(batched, index), await fresh([...prefix, token]))).toBeLessThan(
        TOLERANCE,
      );
    }
    const after = await decoder.step([[13], [13]], decoder.selectRows(batched.cache, [2, 0]));
    expect(maxAbsDiff(row(after, 0), await fresh([...prefix, 286, 13]))).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(row(after, 1), await fresh([...prefix, 11, 13]))).toBeLessThan(TOLERANCE);
  });

  it("refuses a cache made by a decoder of the other layout, naming the mix-up", async () => {
    const wholeCache = { ...decoder.emptyCache(1), written: undefined };
    await expect(decoder.step([[11]], wholeCache)).rejects.toThrow(/returns the whole cache/);
  });

  it("keeps a cache a value: stepping it twice, or an older one, changes no other", async () => {
    const prefix = golden.inputIds.slice(0, 6);
    const base = await decoder.step([prefix], decoder.emptyCache(1));
    const a = await decoder.step([[11]], base.cache); // written in place, after base's positions
    const b = await decoder.step([[286]], base.cache); // the same positions: must not overwrite a's
    const a2 = await decoder.step([[13]], a.cache);
    const b2 = await decoder.step([[13]], b.cache);
    expect(maxAbsDiff(a2.lastLogits, await fresh([...prefix, 11, 13]))).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(b2.lastLogits, await fresh([...prefix, 286, 13]))).toBeLessThan(TOLERANCE);
    // And once more from the first cache, after both branches have written.
    const c = await decoder.step([[257, 13]], base.cache);
    expect(maxAbsDiff(c.lastLogits, await fresh([...prefix, 257, 13]))).toBeLessThan(TOLERANCE);
  });
});

describe("the trained fixture re-exported with --from-onnx --kv-cache buffer", () => {
  const ROOT = resolve(import.meta.dirname, "..", "..");
  const FIXTURE = join(ROOT, "models", "tiny-caption-gpt2");
  let folder: string;
  let concat: Gpt2OnnxDecoder;
  let buffer: Gpt2OnnxDecoder;

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "imagine-reexport-"));
    execFileSync(
      "/usr/bin/python3",
      [
        join(ROOT, "training", "export_onnx.py"),
        "--from-onnx",
        FIXTURE,
        "--kv-cache",
        "buffer",
      ].concat(["--out", join(folder, "buffer")]),
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    concat = await Gpt2OnnxDecoder.load(FIXTURE, { threads: 1 });
    buffer = await Gpt2OnnxDecoder.load(join(folder, "buffer"), { threads: 1 });
  }, 60_000);

  afterAll(async () => {
    await concat?.close();
    await buffer?.close();
    await rm(folder, { recursive: true, force: true });
  });

  it("gives PyTorch's logits from the fixture's own golden.json (its training checkpoint's)", async () => {
    expect([concat.buffersCache, buffer.buffersCache]).toEqual([false, true]);
    const trained = JSON.parse(await readFile(join(FIXTURE, "golden.json"), "utf8"));
    await expectGoldenDecoding(buffer, trained as DecoderGolden, TOLERANCE);
  });

  it("writes the same prompts as the concat graph, rows finishing at different steps", async () => {
    const sampling = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
    const requests = [
      { subject: "a lighthouse", count: 5, seed: 1 },
      { subject: "a red fox in the snow", count: 4, seed: 7 },
      { subject: "portrait of an old sailor", count: 5, seed: 23 },
    ];
    const lengths = new Set<number>();
    for (const request of requests) {
      const ours = await new OnnxPromptGenerator(buffer, { sampling }).generate(request);
      const theirs = await new OnnxPromptGenerator(concat, { sampling }).generate(request);
      expect(ours).toEqual(theirs);
      for (const prompt of ours) lengths.add(prompt.tokens);
    }
    // Rows ended at different steps, so the batch dropped rows on the way (selectRows).
    expect(lengths.size).toBeGreaterThan(1);
  });
});
