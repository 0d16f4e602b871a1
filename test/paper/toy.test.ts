/**
 * `scripts/paper.sh --preset toy`: the paper's path (captions → data prepare with and without
 * tags → base checkpoint exported as the base arm → finetune.py twice with the first blocks
 * frozen → export → the three arms registered in a config file) on CPU at toy scale, then the
 * three arms loaded through IMAGINE_CONFIG as a deployer would, and a second run that finds
 * everything done. Needs /usr/bin/python3 (or IMAGINE_PYTHON) with torch, as
 * test/e2e/training.test.ts does.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { armSampling, loadConfig } from "../../src/core/config.js";
import { createLogger } from "../../src/core/logger.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { testProcessEnv } from "../helpers/cli.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TAGS = { start: "<|startoftext|>", end: "<|endoftext|>" };
const ARMS = ["base", "ft-no-tags", "ft-tags"];
const run = promisify(execFile);

let dir: string;
let out: string;
let firstRun: string;

function paper() {
  return run(
    "bash",
    [
      join(ROOT, "scripts", "paper.sh"),
      "--preset",
      "toy",
      "--work",
      join(dir, "work"),
      "--out",
      out,
    ],
    {
      cwd: ROOT,
      env: {
        ...testProcessEnv(),
        ...(process.env.IMAGINE_PYTHON ? { IMAGINE_PYTHON: process.env.IMAGINE_PYTHON } : {}),
        IMAGINE_LOG_LEVEL: "silent",
      },
      timeout: 110_000,
      maxBuffer: 1 << 24,
    },
  );
}

const readJson = async (path: string) => JSON.parse(await readFile(path, "utf8"));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-paper-toy-"));
  out = join(dir, "out");
  firstRun = (await paper()).stdout;
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("scripts/paper.sh --preset toy", () => {
  it("prepares the first captions twice, with and without tags, from the local fixture", async () => {
    const tags = await readJson(join(dir, "work", "data-tags", "report.json"));
    const noTags = await readJson(join(dir, "work", "data-no-tags", "report.json"));
    expect(tags.kept).toBe(300);
    expect(tags.tags).toEqual(TAGS);
    expect(noTags.kept).toBe(300);
    expect(noTags.tags).toBeNull();
    expect(tags.train.captions + tags.eval.captions).toBe(300);
    // The same captions: only the tags differ.
    expect(noTags.train.meanCaptionTokens).toBeCloseTo(tags.train.meanCaptionTokens, 9);
  });

  it("finetunes both arms from the base checkpoint with blocks frozen, and exports all three", async () => {
    const base = await readJson(join(out, "models", "base", "imagine-model.json"));
    const noTags = await readJson(join(out, "models", "ft-no-tags", "imagine-model.json"));
    const tagged = await readJson(join(out, "models", "ft-tags", "imagine-model.json"));
    expect(base.tags).toBeNull();
    expect(noTags.tags).toBeNull();
    expect(tagged.tags).toEqual(TAGS);
    for (const model of [noTags, tagged]) {
      expect(model.provenance).toMatchObject({ frozenBlocks: 1, steps: 4 });
      expect(typeof model.provenance.finalEvalLoss).toBe("number");
    }
    expect(firstRun).toMatch(/frozen: embeddings \+ tied lm_head \+ 1 blocks/);
    expect(firstRun).toContain("--resume: no checkpoint");
  });

  it("registers the three arms with one sampling and one generation length", async () => {
    const file = join(out, "paper-config.json");
    const report = await readJson(join(dir, "work", "data-tags", "report.json"));
    const maxNewTokens = Math.ceil(report.train.meanCaptionTokens);
    const { config } = loadConfig({ IMAGINE_CONFIG: file, IMAGINE_DATA_DIR: join(dir, "data") });
    expect(Object.keys(config.arms).sort()).toEqual(ARMS);
    expect(config.defaultArm).toBe("ft-tags");
    const samplings = ARMS.map((name) => armSampling(config, config.arms[name] as never));
    for (const sampling of samplings) expect(sampling).toEqual(samplings[0]);
    for (const name of ARMS) {
      expect(config.arms[name]).toMatchObject({
        kind: "onnx",
        modelDir: join(out, "models", name),
        maxNewTokens,
      });
    }

    const arms = new PromptArms(config, {}, createLogger({ level: "silent" }));
    try {
      for (const name of ARMS) {
        const generator = await arms.get(name);
        const request = { subject: "a lighthouse", count: 3, seed: 5 };
        const prompts = await generator.generate(request);
        expect(prompts).toHaveLength(3);
        for (const prompt of prompts) {
          expect(prompt.text.startsWith("a lighthouse")).toBe(true);
          expect(prompt.tokens).toBeLessThanOrEqual(maxNewTokens);
        }
        expect(await generator.generate(request)).toEqual(prompts);
      }
    } finally {
      await arms.close();
    }
  });

  it("a second run finds every step done and only rewrites the config", async () => {
    const { stdout } = await paper();
    const steps = stdout.split("\n").filter((line) => line.startsWith("== "));
    expect(steps).toEqual([`== register: ${join(out, "paper-config.json")}`]);
    expect(existsSync(join(out, "models", "ft-tags.tmp"))).toBe(false);
  }, 60_000);
});
