/**
 * The shipped default prompt model (models/caption-gpt2-small) as a user gets it: the default
 * arm of config/default.json, small enough to commit, matching PyTorch's golden outputs through
 * onnxruntime-node, and writing clean, closed prompts for everyday subjects. Other tests keep
 * using the tiny fixture; this one checks the artifact that ships.
 */
import { readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evalArm, evaluatePrompts } from "../../src/core/eval/index.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import { float32FromBase64, greedyThroughCache, maxAbsDiff } from "../helpers/golden.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const MODEL_DIR = join(ROOT, "models", "caption-gpt2-small");
const SAMPLING = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };

let decoder: Gpt2OnnxDecoder;

beforeAll(async () => {
  decoder = await Gpt2OnnxDecoder.load(MODEL_DIR, { threads: 1 });
});

afterAll(async () => {
  await decoder.close();
});

describe("the shipped default model", () => {
  it("is the default arm, at most 30 MB, tagged, with its own cap and a data card", () => {
    const config = JSON.parse(readFileSync(join(ROOT, "config", "default.json"), "utf8"));
    expect(config.arms[config.defaultArm].modelDir).toBe("models/caption-gpt2-small");
    expect(statSync(join(MODEL_DIR, "model.onnx")).size).toBeLessThanOrEqual(30_000_000);
    const { metadata } = decoder.model;
    expect(metadata.tags).toEqual({ start: "<|startoftext|>", end: "<|endoftext|>" });
    expect(metadata.maxNewTokens).toBeGreaterThan(metadata.meanCaptionTokens);
    const card = readFileSync(join(MODEL_DIR, "README.md"), "utf8");
    for (const section of ["## Data", "## Training", "## Prompt quality"])
      expect(card).toContain(section);
  });

  it("matches PyTorch's logits and cached greedy run", async () => {
    const golden = JSON.parse(readFileSync(join(MODEL_DIR, "golden.json"), "utf8"));
    const { lastLogits } = await decoder.step([golden.inputIds], decoder.emptyCache(1));
    expect(maxAbsDiff(lastLogits, float32FromBase64(golden.lastLogitsBase64))).toBeLessThan(1e-4);
    const { tokens } = await greedyThroughCache(decoder, golden.inputIds, golden.greedy.steps);
    expect(tokens).toEqual(golden.greedy.tokens);
  });

  it("writes clean prompts that it closes itself", async () => {
    const arm = evalArm("default", new OnnxPromptGenerator(decoder, { sampling: SAMPLING }));
    const report = await evaluatePrompts([arm], {
      concepts: ["a dog", "a mountain lake", "a birthday cake"],
      count: 10,
      seed: 1,
      filter: loadExplicitFilter(),
    });
    const figures = report.arms[0];
    expect(figures?.subjectKept).toBe(1);
    expect(figures?.glued).toBe(0);
    expect(figures?.tagFragments).toBe(0);
    expect(figures?.complete).toBeGreaterThanOrEqual(0.9);
    expect(figures?.distinct2).toBeGreaterThanOrEqual(0.6);
  });
});
