/**
 * The prompt-quality harness (src/core/eval): exact counts on a scripted generator, real runs
 * on the tiny model, and the command line.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  distinctN,
  evalArm,
  evaluatePrompts,
  formatEvalTable,
  isGlued,
  readConcepts,
  type SimilarityScorer,
} from "../../src/core/eval/index.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { GeneratedPrompt, GenerateRequest, PromptGenerator } from "../../src/core/types.js";
import { runCli } from "../helpers/cli.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TINY = resolve(ROOT, "models", "tiny-caption-gpt2");
const filter = loadExplicitFilter();

/** A generator that returns fixed prompt texts per subject, cycling through them. */
function scripted(texts: Record<string, [string, boolean][]>): PromptGenerator & {
  requests: GenerateRequest[];
} {
  const requests: GenerateRequest[] = [];
  return {
    description: "scripted",
    requests,
    async generate(request) {
      requests.push(request);
      const options = texts[request.subject] ?? [];
      return Array.from({ length: request.count }, (_, i): GeneratedPrompt => {
        const [text, complete] = options[i % options.length] as [string, boolean];
        return { text, complete, tokens: 3 };
      });
    },
    async close() {},
  };
}

describe("measures", () => {
  it("distinct-n counts unique word n-grams over all n-grams", () => {
    expect(distinctN(["a b c", "a b d"], 1)).toBeCloseTo(4 / 6);
    expect(distinctN(["a b c", "a b d"], 2)).toBeCloseTo(3 / 4);
    expect(distinctN(["A B", "a b"], 2)).toBe(0.5);
    expect(distinctN(["", "x"], 2)).toBe(1);
  });

  it("calls a continuation glued only where the script has spaces", () => {
    expect(isGlued("a dog", "a dogmill on a hill")).toBe(true);
    expect(isGlued("a dog", "a dog on a hill")).toBe(false);
    expect(isGlued("a dog", "a dog, on a hill")).toBe(false);
    expect(isGlued("a dog", "a dog")).toBe(false);
    expect(isGlued("東京", "東京タワー")).toBe(false);
  });
});

describe("evaluatePrompts on a scripted generator", () => {
  it("counts every defect exactly and averages distinctness per concept", async () => {
    const generator = scripted({
      "a dog": [
        [" a dog on a beach", false], // subject not at the start (leading space)
        ["a dogmill in the sun", false], // glued
        ["a dog trendingoftext|> art", false], // tag fragment
        ["a dog on a beach at dusk", true],
      ],
      "a cat": [
        ["a cat fucking around", true], // explicit
        ["a cat on a sofa", true],
      ],
    });
    const calls: string[] = [];
    const similarity: SimilarityScorer = {
      name: "fake",
      async score(subject, prompts) {
        calls.push(subject);
        return prompts.map((p) => (p.startsWith(subject) ? 1 : 0));
      },
    };
    const report = await evaluatePrompts(
      [{ name: "s", generator, cap: 10, trainingMeanTokens: 7, tags: ["<|startoftext|>"] }],
      { concepts: ["a dog", "a cat"], count: 4, seed: 5, filter, similarity },
    );
    const arm = report.arms[0];
    expect(arm).toMatchObject({
      arm: "s",
      prompts: 8,
      complete: 5 / 8,
      subjectKept: 7 / 8,
      glued: 1,
      tagFragments: 1,
      explicit: 2,
      cap: 10,
      trainingMeanTokens: 7,
      similarity: 7 / 8,
      similarityScorer: "fake",
    });
    expect(calls).toEqual(["a dog", "a cat"]);
    // Every concept's batch uses the run's seed and count.
    expect(generator.requests.map((r) => [r.subject, r.seed, r.count])).toEqual([
      ["a dog", 5, 4],
      ["a cat", 5, 4],
    ]);
    const cat = report.arms[0]?.concepts[1];
    // " fucking around" ×2 and " on a sofa" ×2: 5 unique of 10 words, 3 of 6 bigrams.
    expect(cat?.distinct1).toBeCloseTo(5 / 10);
    expect(cat?.distinct2).toBeCloseTo(3 / 6);
    expect(arm?.distinct2).toBeCloseTo(((report.arms[0]?.concepts[0]?.distinct2 ?? 0) + 0.5) / 2);
    expect(arm?.p90Tokens).toBeGreaterThanOrEqual(arm?.meanTokens ?? 0);
    const table = formatEvalTable(report);
    expect(table).toContain("2 concepts × 4 prompts, seed 5");
    expect(table.split("\n")[2]).toMatch(/^s\s+8\s+63%\s+88%\s+1\s+1\s+2\s/);
  });

  it("reports no similarity without a scorer, and refuses an empty run", async () => {
    const generator = scripted({ "a dog": [["a dog on a hill", true]] });
    const report = await evaluatePrompts(
      [{ name: "s", generator, cap: null, trainingMeanTokens: null, tags: [] }],
      { concepts: ["a dog"], count: 2, seed: 1, filter },
    );
    expect(report.arms[0]?.similarity).toBeNull();
    expect(formatEvalTable(report)).toMatch(/\s-\s+-\s+\d+\.\d\s+-$/m);
    await expect(evaluatePrompts([], { concepts: [], count: 2, seed: 1, filter })).rejects.toThrow(
      /no concepts/,
    );
  });
});

describe("evaluatePrompts on the tiny model", () => {
  let decoder: Gpt2OnnxDecoder;
  beforeAll(async () => {
    decoder = await Gpt2OnnxDecoder.load(TINY);
  });
  afterAll(async () => {
    await decoder.close();
  });

  it("gives clean, reproducible figures with the model's cap and caption length", async () => {
    const sampling = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
    const arm = evalArm("tiny", new OnnxPromptGenerator(decoder, { sampling }));
    expect(arm.cap).toBe(Math.ceil(decoder.model.metadata.meanCaptionTokens));
    expect(arm.trainingMeanTokens).toBe(decoder.model.metadata.meanCaptionTokens);
    const options = { concepts: ["a dog", "a lighthouse", "a red car"], count: 8, seed: 3, filter };
    const report = await evaluatePrompts([arm], options);
    const tiny = report.arms[0];
    expect(tiny?.prompts).toBe(24);
    expect(tiny?.subjectKept).toBe(1);
    expect(tiny?.glued).toBe(0);
    expect(tiny?.tagFragments).toBe(0);
    expect(tiny?.complete).toBeGreaterThan(0.8);
    expect(tiny?.msPerPrompt).toBeGreaterThan(0);
    const again = await evaluatePrompts([arm], options);
    expect(again.arms[0]?.concepts).toEqual(tiny?.concepts);
  });
});

describe("imagine-bot eval prompts", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "imagine-eval-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads concepts from a file or a list, and says what is wrong with them", async () => {
    const file = join(dir, "concepts.txt");
    await writeFile(file, "# everyday\na dog\n\na cat\na dog\n");
    expect(readConcepts(file, 200)).toEqual(["a dog", "a cat"]);
    expect(readConcepts("a dog, a lighthouse", 200)).toEqual(["a dog", "a lighthouse"]);
    expect(() => readConcepts(join(dir, "missing.txt"), 200)).toThrow(/no such file/);
    expect(() => readConcepts(" , ", 200)).toThrow(/no concepts/);
    expect(() => readConcepts("a dog,x\u0007y", 200)).toThrow(/concept 2.*control character/);
  });

  it("prints the JSON report for model directories, the same on every run", async () => {
    const args = ["eval", "prompts", "--concepts", "a dog,a cat", "--model", TINY, "-n", "3"];
    const first = await runCli([...args, "--json"]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report.concepts).toEqual(["a dog", "a cat"]);
    expect(report.seed).toBe(1);
    expect(report.arms).toHaveLength(1);
    expect(report.arms[0].arm).toBe(TINY);
    expect(report.arms[0].prompts).toBe(6);
    expect(report.arms[0].concepts[0].prompts).toHaveLength(3);
    const second = await runCli([...args, "--json"]);
    expect(JSON.parse(second.stdout).arms[0].concepts).toEqual(report.arms[0].concepts);
    const table = await runCli(args);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^# 2 concepts × 3 prompts, seed 1\narm\s+prompts\s+complete/);
  });

  it.each([
    [["eval", "prompts"], /--concepts/],
    [["eval", "prompts", "--concepts", "nowhere/concepts.txt"], /no such file/],
    [["eval", "prompts", "--concepts", "a dog", "--arms", "nope"], /no arm called "nope"/],
    [["eval", "prompts", "--concepts", "a dog", "-n", "0"], /whole number from 1 to 100/],
    [["eval", "prompts", "--concepts", "a dog", "--arms", "a", "--model", TINY], /cannot be used/],
  ])("exits 2 with a clear message for %j", async (args, message) => {
    const { code, stderr } = await runCli(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });
});
