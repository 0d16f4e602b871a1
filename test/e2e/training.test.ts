/**
 * The offline chain end to end at toy scale, driven from TypeScript:
 *
 *   captions ─(prepareCaptions)─▶ train/eval.tokens ─(python3 training/finetune.py --freeze 1
 *   --export)─▶ model dir ─(Gpt2OnnxDecoder + OnnxPromptGenerator)─▶ prompts
 *
 * Python is Debian's /usr/bin/python3 with python3-torch (scripts/test.sh installs it before
 * vitest runs; IMAGINE_PYTHON overrides the interpreter). Eight steps of training on 300
 * captions cannot write complete captions, so the test checks the contract, not the quality:
 * the exported directory loads, prompts start with the subject and are reproducible, and
 * imagine-model.json carries the tags, mean caption length and provenance.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  explicitFilterSource,
  type PrepareReport,
  prepareCaptions,
} from "../../src/core/data/prepare.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { OnnxPromptGenerator } from "../../src/core/prompt/onnxGenerator.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const PYTHON = process.env.IMAGINE_PYTHON ?? "/usr/bin/python3";
const TAGS = { start: "<|startoftext|>", end: "<|endoftext|>" };
const SUBJECT = "a lighthouse";
const SAMPLING = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
const STEPS = 8;

const run = promisify(execFile);

let dir: string;
let prepared: PrepareReport;
let modelDir: string;
let finetuneLog: string;
let decoder: Gpt2OnnxDecoder | undefined;

beforeAll(async () => {
  if (!existsSync(PYTHON)) {
    throw new Error(
      `${PYTHON} does not exist: this test trains with PyTorch (apt-get install python3-torch, or set IMAGINE_PYTHON)`,
    );
  }
  dir = await mkdtemp(join(tmpdir(), "imagine-e2e-training-"));
  const fixture = await readFile(join(ROOT, "training", "fixtures", "captions.txt"), "utf8");
  const captions = join(dir, "captions.txt");
  await writeFile(captions, `${fixture.split("\n").slice(0, 300).join("\n")}\n`);

  const data = join(dir, "data");
  prepared = await prepareCaptions({
    inputs: [captions],
    outDir: data,
    tags: TAGS,
    evalFraction: 0.1,
    seed: 1,
    filter: explicitFilterSource({}),
    workers: 1,
  });

  modelDir = join(dir, "model");
  const { stdout } = await run(
    PYTHON,
    [
      join(ROOT, "training", "finetune.py"),
      ...["--init", "tiny", "--data", data, "--out", join(dir, "checkpoint")],
      ...["--freeze", "1", "--max-steps", String(STEPS), "--batch-size", "4", "--block-size", "32"],
      ...["--lr", "1e-2", "--eval-batches", "2", "--eval-every", "4", "--log-every", "4"],
      ...["--device", "cpu", "--seed", "1", "--export", modelDir],
    ],
    { cwd: ROOT, timeout: 120_000, maxBuffer: 1 << 24 },
  );
  finetuneLog = stdout;
}, 150_000);

afterAll(async () => {
  await decoder?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("captions → data prepare → finetune.py → export → engine", () => {
  it("prepares tagged train/eval token files from the captions", () => {
    expect(prepared.kept).toBe(300);
    expect(prepared.tags).toEqual(TAGS);
    expect(prepared.train.captions + prepared.eval.captions).toBe(300);
    expect(prepared.eval.captions).toBeGreaterThan(0);
  });

  it("trains with eval loss and perplexity in the progress lines, and exports", () => {
    expect(finetuneLog).toMatch(/step 0\/8 \| eval loss \d+\.\d+ \| ppl \d+/);
    expect(finetuneLog).toMatch(/step 8\/8 \| eval loss \d+\.\d+ \| ppl \d+/);
    expect(finetuneLog).toContain("exporting");
    for (const file of ["model.onnx", "imagine-model.json"])
      expect(existsSync(join(modelDir, file))).toBe(true);
  });

  it("records tags, mean caption length and provenance in imagine-model.json", async () => {
    const meta = JSON.parse(await readFile(join(modelDir, "imagine-model.json"), "utf8"));
    expect(meta.tags).toEqual(TAGS);
    expect(meta.meanCaptionTokens).toBeCloseTo(prepared.train.meanCaptionTokens, 6);
    expect(meta.architecture).toMatchObject({ type: "gpt2", vocabSize: 50257, nLayer: 2 });
    expect(meta.provenance).toMatchObject({
      baseModel: "random:tiny (seed 1)",
      frozenBlocks: 1,
      steps: STEPS,
      data: {
        source: "captions.txt",
        trainTokens: prepared.train.tokens,
        evalTokens: prepared.eval.tokens,
        trainDocuments: prepared.train.captions,
      },
    });
    expect(typeof meta.provenance.finalEvalLoss).toBe("number");
  });

  it("loads in the ONNX engine and writes reproducible prompts that start with the subject", async () => {
    decoder = await Gpt2OnnxDecoder.load(modelDir, { threads: 1 });
    const generator = new OnnxPromptGenerator(decoder, { sampling: SAMPLING });
    const request = { subject: SUBJECT, count: 3, seed: 1 };
    const prompts = await generator.generate(request);
    expect(prompts).toHaveLength(3);
    for (const prompt of prompts) {
      expect(prompt.text.startsWith(SUBJECT)).toBe(true);
      expect(prompt.text).not.toContain("<|startoftext|>");
      expect(prompt.text).not.toContain("<|endoftext|>");
    }
    expect(await generator.generate(request)).toEqual(prompts);
  });
});
