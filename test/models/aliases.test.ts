/**
 * The ready-made arms of `models pull`: each alias against a fake Hub (test/fakes/hub.ts) that
 * serves a tiny model in that alias's real layout —
 *   gpt2-medium  openai-community/gpt2-medium: onnx/decoder_model_merged.onnx in one file
 *   gpt2-large   openai-community/gpt2-large: a small graph whose weights live in
 *                decoder_model_merged.onnx_data and Constant_164_attr__value beside it
 *   gpt2-xl      openai-community/gpt2-xl: config.json + model.safetensors only (converted here)
 *   magicprompt  paralaif/MagicPrompt-Stable-Diffusion-ONNX: onnx/model.onnx (transformers.js v3)
 * — then the licence shown, the arm registered and usable with `--arm`, and conversion with and
 * without PyTorch. The tiny models are made here by Python (/usr/bin/python3, or IMAGINE_PYTHON,
 * with torch and onnx, as test/e2e/training.test.ts needs): the optimum-style merged fixture
 * test/fixtures/hf-merged-gpt2 re-saved with external data, and a random tiny checkpoint.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/core/config.js";
import { UserError } from "../../src/core/errors.js";
import {
  externalDataLocations,
  MODEL_ALIASES,
  type PullOptions,
  pullModel,
  resolveSource,
} from "../../src/core/models/pull.js";
import {
  PULLED_ARMS_FILE,
  readPulledArmRegistry,
  registerPulledArm,
} from "../../src/core/models/registry.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { FakeHub, sha256 } from "../fakes/hub.js";
import { runCli } from "../helpers/cli.js";
import { FAST_RETRY, failure } from "./pullHarness.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const PYTHON = process.env.IMAGINE_PYTHON ?? "/usr/bin/python3";
const MERGED = join(ROOT, "test", "fixtures", "hf-merged-gpt2");
const TINY_ONNX = readFileSync(join(ROOT, "models", "tiny-caption-gpt2", "model.onnx"));
const run = promisify(execFile);

const config = (layers: number, embd: number, positions: number, heads = 2) =>
  JSON.stringify({
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    n_ctx: positions,
    n_embd: embd,
    n_head: heads,
    n_layer: layers,
    n_positions: positions,
    vocab_size: 50257,
  });
/** test/fixtures/hf-merged-gpt2's architecture. */
const MERGED_CONFIG = config(2, 8, 64);
/** models/tiny-caption-gpt2's and the "tiny" preset's. */
const TINY_CONFIG = config(2, 32, 64);

let fixtures: string;
/** hf-merged-gpt2 re-saved with its large tensors in two external files, as gpt2-large is. */
let external: Record<string, Buffer>;
/** A random "tiny" GPT-2 checkpoint as Hugging Face lays it out: config.json, model.safetensors. */
let checkpoint: Record<string, Buffer>;

beforeAll(async () => {
  if (!existsSync(PYTHON)) {
    throw new Error(
      `${PYTHON} does not exist: these tests make tiny models with PyTorch and onnx (apt-get install python3-torch python3-onnx, or set IMAGINE_PYTHON)`,
    );
  }
  fixtures = await mkdtemp(join(tmpdir(), "imagine-alias-fixtures-"));
  const script = `
import os, sys
sys.path.insert(0, ${JSON.stringify(join(ROOT, "training"))})
import onnx, torch
from onnx.external_data_helper import _get_all_tensors, convert_model_to_external_data, uses_external_data
from checkpoint import save_pretrained
from gpt2 import GPT2LMHeadModel, preset
out = sys.argv[1]
m = onnx.load(${JSON.stringify(join(MERGED, "decoder_model_merged.onnx"))})
convert_model_to_external_data(m, all_tensors_to_one_file=True, location="decoder_model_merged.onnx_data", size_threshold=1024)
moved = [t for t in _get_all_tensors(m) if uses_external_data(t)][:2]
for tensor in moved:
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = "Constant_164_attr__value"
os.makedirs(os.path.join(out, "external"))
onnx.save_model(m, os.path.join(out, "external", "decoder_model_merged.onnx"))
torch.manual_seed(1)
save_pretrained(GPT2LMHeadModel(preset("tiny")), os.path.join(out, "checkpoint"))
`;
  await run(PYTHON, ["-c", script, fixtures], { timeout: 120_000 });
  const read = async (dir: string) =>
    Object.fromEntries(
      await Promise.all(
        (await readdir(dir)).map(async (name) => [name, await readFile(join(dir, name))] as const),
      ),
    );
  external = await read(join(fixtures, "external"));
  checkpoint = await read(join(fixtures, "checkpoint"));
}, 150_000);

afterAll(async () => {
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
});

let hub: FakeHub;
let modelsDir: string;

beforeEach(async () => {
  hub = await new FakeHub().start();
  modelsDir = await mkdtemp(join(tmpdir(), "imagine-alias-"));
});

afterEach(async () => {
  await hub.stop();
  await rm(modelsDir, { recursive: true, force: true });
});

function pull(source: string, options: Partial<PullOptions> = {}) {
  return pullModel({ source, modelsDir, endpoint: hub.url, retry: FAST_RETRY, ...options });
}

/** Loads a pulled directory in the engine and runs one greedy step: the weights are all there. */
async function runsInEngine(dir: string): Promise<number> {
  const decoder = await Gpt2OnnxDecoder.load(dir);
  try {
    const step = await decoder.step([[64, 46371]], decoder.emptyCache(1));
    expect(step.lastLogits.length).toBe(50257);
    expect(step.lastLogits.every((value) => Number.isFinite(value))).toBe(true);
    return step.lastLogits[0] as number;
  } finally {
    await decoder.close();
  }
}

describe("aliases", () => {
  it("name the repositories whose layouts they were written for", () => {
    expect(Object.keys(MODEL_ALIASES)).toEqual([
      "gpt2",
      "gpt2-medium",
      "gpt2-large",
      "gpt2-xl",
      "magicprompt",
      "sd-turbo",
      "sd21",
    ]);
    expect(resolveSource("gpt2-medium")).toMatchObject({
      repo: "openai-community/gpt2-medium",
      onnx: "onnx/decoder_model_merged.onnx",
      name: "gpt2-medium",
    });
    expect(resolveSource("gpt2-xl")).toMatchObject({ repo: "openai-community/gpt2-xl" });
    expect(resolveSource("gpt2-xl").onnx).toBeUndefined();
    expect(resolveSource("magicprompt").repo).toBe("paralaif/MagicPrompt-Stable-Diffusion-ONNX");
    // Not an alias: a repository id, named by its last part; prototype keys are not aliases.
    expect(resolveSource("lab/gpt2-medium")).toEqual({
      repo: "lab/gpt2-medium",
      name: "gpt2-medium",
    });
    expect(() => resolveSource("constructor")).toThrow(UserError);
  });

  it("gpt2-medium: the merged decoder of the OpenAI repository, licence from the model card", async () => {
    hub.addRepo(
      "openai-community/gpt2-medium",
      {
        "config.json": TINY_CONFIG,
        "model.safetensors": Buffer.alloc(2048, 1),
        "onnx/config.json": TINY_CONFIG,
        "onnx/decoder_model_merged.onnx": TINY_ONNX,
        "onnx/decoder_model.onnx": Buffer.alloc(1024, 2),
        "onnx/tokenizer.json": "{}",
      },
      { license: "mit" },
    );
    const result = await pull("gpt2-medium");
    expect(result).toMatchObject({ repo: "openai-community/gpt2-medium", license: "mit" });
    expect(result.convertedFrom).toBeUndefined();
    expect(hub.served.map((s) => s.path).sort()).toEqual([
      "config.json",
      "onnx/decoder_model_merged.onnx",
    ]);
    const metadata = JSON.parse(await readFile(join(result.dir, "imagine-model.json"), "utf8"));
    expect(metadata).toMatchObject({ tags: null, meanCaptionTokens: 20 });
    expect(metadata.provenance.license).toBe("mit");
    await runsInEngine(result.dir);
  });

  it("the Hub's licence is the one shown, for any repository", async () => {
    hub.addRepo(
      "lab/caption-gpt2",
      { "config.json": TINY_CONFIG, "model.onnx": TINY_ONNX },
      { license: "cc-by-nc-4.0" },
    );
    const result = await pull("lab/caption-gpt2");
    expect(result.license).toBe("cc-by-nc-4.0");
    const metadata = JSON.parse(await readFile(join(result.dir, "imagine-model.json"), "utf8"));
    expect(metadata.provenance.license).toBe("cc-by-nc-4.0");
  });

  it("gpt2-large: fetches every external-data file the graph names, whatever its name", async () => {
    expect(Object.keys(external).sort()).toEqual([
      "Constant_164_attr__value",
      "decoder_model_merged.onnx",
      "decoder_model_merged.onnx_data",
    ]);
    const files: Record<string, Buffer | string> = {
      "config.json": MERGED_CONFIG,
      "onnx/decoder_with_past_model.onnx": Buffer.alloc(512, 3),
    };
    for (const [name, bytes] of Object.entries(external)) files[`onnx/${name}`] = bytes;
    hub.addRepo("openai-community/gpt2-large", files);

    expect(
      (await externalDataLocations(join(fixtures, "external", "decoder_model_merged.onnx"))).sort(),
    ).toEqual(["Constant_164_attr__value", "decoder_model_merged.onnx_data"]);

    const result = await pull("gpt2-large");
    // The Hub states no licence here: the alias table's is shown.
    expect(result.license).toBe("mit");
    expect(result.files.map((f) => f.path).sort()).toEqual([
      "config.json",
      "imagine-model.json",
      "onnx/Constant_164_attr__value",
      "onnx/decoder_model_merged.onnx",
      "onnx/decoder_model_merged.onnx_data",
    ]);
    // The loaded graph computes what the single-file fixture does: no weight was left behind.
    const golden = JSON.parse(await readFile(join(MERGED, "golden.json"), "utf8")) as {
      inputIds: number[];
      lastLogitsBase64: string;
    };
    const decoder = await Gpt2OnnxDecoder.load(result.dir);
    try {
      const step = await decoder.step([golden.inputIds], decoder.emptyCache(1));
      const bytes = Buffer.from(golden.lastLogitsBase64, "base64");
      const reference = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      let maxDiff = 0;
      for (let i = 0; i < reference.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs((step.lastLogits[i] ?? 0) - (reference[i] ?? 0)));
      }
      expect(maxDiff).toBeLessThan(1e-4);
    } finally {
      await decoder.close();
    }
  });

  it("an external-data location missing from the repository fails and names it", async () => {
    hub.addRepo("openai-community/gpt2-large", {
      "config.json": MERGED_CONFIG,
      "onnx/decoder_model_merged.onnx": external["decoder_model_merged.onnx"] as Buffer,
      "onnx/decoder_model_merged.onnx_data": external["decoder_model_merged.onnx_data"] as Buffer,
    });
    const error = await failure(pull("gpt2-large"));
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(
      /has no onnx\/Constant_164_attr__value \(external data named by onnx\/decoder_model_merged\.onnx\)/,
    );
    expect(existsSync(join(modelsDir, "gpt2-large"))).toBe(false);
  });

  it("magicprompt: transformers.js v3's onnx/model.onnx, untagged, with its own token cap", async () => {
    hub.addRepo(
      "paralaif/MagicPrompt-Stable-Diffusion-ONNX",
      {
        "config.json": TINY_CONFIG,
        "generation_config.json": "{}",
        "tokenizer.json": "{}",
        "onnx/model.onnx": TINY_ONNX,
        "onnx/model_quantized.onnx": Buffer.alloc(2048, 4),
      },
      { license: "mit" },
    );
    const result = await pull("magicprompt");
    expect(result.license).toBe("mit");
    const metadata = JSON.parse(await readFile(join(result.dir, "imagine-model.json"), "utf8"));
    expect(metadata).toMatchObject({ onnx: "onnx/model.onnx", tags: null, maxNewTokens: 60 });
    expect(hub.resolves("onnx/model_quantized.onnx")).toHaveLength(0);
    await runsInEngine(result.dir);
  });
});

describe("the pulled arm", () => {
  it("is registered and usable with --arm right after the pull, licence shown", async () => {
    hub.addRepo(
      "paralaif/MagicPrompt-Stable-Diffusion-ONNX",
      { "config.json": TINY_CONFIG, "onnx/model.onnx": TINY_ONNX },
      { license: "mit" },
    );
    const dataDir = join(modelsDir, "data");
    const env = { HF_ENDPOINT: hub.url, IMAGINE_DATA_DIR: dataDir };
    const pulled = await runCli(["models", "pull", "magicprompt", "--dir", modelsDir], env);
    expect(pulled.stderr).toBe("");
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toContain("Licence: mit");
    expect(pulled.stdout).toContain(
      `Registered as arm "magicprompt" in ${join(dataDir, PULLED_ARMS_FILE)}`,
    );
    expect(readPulledArmRegistry(dataDir)).toEqual({
      magicprompt: {
        kind: "onnx",
        modelDir: join(modelsDir, "magicprompt"),
        repo: "paralaif/MagicPrompt-Stable-Diffusion-ONNX",
        revision: expect.stringMatching(/^[0-9a-f]{40}$/),
        license: "mit",
        pulledAt: expect.any(String),
      },
    });

    const prompt = await runCli(
      ["prompt", "a lighthouse", "--arm", "magicprompt", "-n", "2", "--seed", "3", "--json"],
      env,
    );
    expect(prompt.stderr).toBe("");
    expect(prompt.code).toBe(0);
    const result = JSON.parse(prompt.stdout);
    expect(result.arm).toBe("magicprompt");
    expect(result.prompts).toHaveLength(2);
    for (const p of result.prompts) expect(p.text.startsWith("a lighthouse")).toBe(true);

    // Without the registry the arm does not exist: the registry, not luck, made it work.
    const elsewhere = await runCli(["prompt", "a lighthouse", "--arm", "magicprompt"], {
      IMAGINE_DATA_DIR: join(modelsDir, "other-data"),
    });
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toMatch(/no arm called "magicprompt"/);
  });

  it("--json carries the licence and the arm; --no-register leaves the registry alone", async () => {
    hub.addRepo("lab/Odd.Name", { "config.json": TINY_CONFIG, "model.onnx": TINY_ONNX });
    const dataDir = join(modelsDir, "data");
    const env = { HF_ENDPOINT: hub.url, IMAGINE_DATA_DIR: dataDir };
    const quiet = await runCli(
      ["models", "pull", "lab/Odd.Name", "--dir", modelsDir, "--no-register", "--json"],
      env,
    );
    expect(quiet.code).toBe(0);
    expect(JSON.parse(quiet.stdout)).toMatchObject({ license: null, arm: null, registry: null });
    expect(existsSync(join(dataDir, PULLED_ARMS_FILE))).toBe(false);

    // A folder name that is no arm name: pulled, not registered, and told how to fix it.
    const odd = await runCli(["models", "pull", "lab/Odd.Name", "--dir", modelsDir], env);
    expect(odd.code).toBe(0);
    expect(odd.stdout).toContain("Licence: not stated on the Hub");
    expect(odd.stdout).toContain("--name <lowercase-name>");
    const named = await runCli(
      ["models", "pull", "lab/Odd.Name", "--dir", modelsDir, "--name", "odd", "--json"],
      env,
    );
    expect(JSON.parse(named.stdout)).toMatchObject({
      arm: "odd",
      registry: join(dataDir, PULLED_ARMS_FILE),
    });

    // A damaged registry does not undo the pull: the model is there, the arm is not.
    await writeFile(join(dataDir, PULLED_ARMS_FILE), "{");
    const damaged = await runCli(
      ["models", "pull", "lab/Odd.Name", "--dir", modelsDir, "--name", "odd"],
      env,
    );
    expect(damaged.code).toBe(0);
    expect(damaged.stderr).toMatch(/pulled, but not registered as an arm: .*is not valid JSON/);
    expect(damaged.stdout).toContain("Use it with --model");
  });

  it("PromptArms offers registered arms, and a configured arm of the same name wins", async () => {
    const dataDir = join(modelsDir, "data");
    const pulledDir = join(modelsDir, "pulled");
    await mkdir(pulledDir, { recursive: true });
    const entry = {
      kind: "onnx" as const,
      repo: "lab/x",
      revision: "a".repeat(40),
      license: "mit",
      pulledAt: "2026-01-01T00:00:00.000Z",
    };
    await registerPulledArm(dataDir, "extra", { ...entry, modelDir: pulledDir });
    await registerPulledArm(dataDir, "base", { ...entry, modelDir: pulledDir });
    const configured = join(ROOT, "models", "tiny-caption-gpt2");
    const arms = new PromptArms(
      {
        dataDir,
        defaultArm: "base",
        arms: { base: { kind: "onnx", modelDir: configured } },
        sampling: { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
        prompt: { count: 1, maxSubjectLength: 200, threads: 1, spinning: false },
        remote: { timeoutMs: 1000, retries: 0 },
      } as unknown as Config,
      {},
      silentLogger(),
    );
    expect(arms.names.sort()).toEqual(["base", "extra"]);
    // "extra" points at an empty folder: loading it fails with the model-directory error,
    // which shows it resolved to the registered directory.
    const error = await failure(arms.get("extra"));
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain(pulledDir);
    // "base" is the configured one, which loads.
    await expect(arms.get("base")).resolves.toBeDefined();
    await arms.close();
  });

  it("a damaged registry is reported with what to do", async () => {
    const dataDir = join(modelsDir, "data");
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, PULLED_ARMS_FILE), '{"version":1,"arms":{"Bad Name":{}}}');
    expect(() => readPulledArmRegistry(dataDir)).toThrow(/not a pulled-arms registry.*Delete it/);
    await writeFile(join(dataDir, PULLED_ARMS_FILE), "{");
    expect(() => readPulledArmRegistry(dataDir)).toThrow(/is not valid JSON/);
  });
});

describe("repositories with only PyTorch weights (gpt2-xl)", () => {
  it("are converted with training/export_onnx.py, resumably fetched, and reused on the next pull", async () => {
    const commit = hub.addRepo(
      "openai-community/gpt2-xl",
      {
        ...checkpoint,
        "pytorch_model.bin": Buffer.alloc(4096, 5),
        "tokenizer.json": "{}",
        "README.md": "# gpt2-xl\n",
      },
      { license: "mit" },
    );
    const weights = checkpoint["model.safetensors"] as Buffer;
    // The first download is cut half-way: the pull resumes it with a Range request.
    hub.fault("model.safetensors", { kind: "cut", afterBytes: Math.floor(weights.length / 2) });
    const events: string[] = [];
    const result = await pull("gpt2-xl", {
      onFile: (event) => {
        if (event.kind === "convert") events.push(`convert ${event.from}`);
      },
    });
    expect(events).toEqual(["convert model.safetensors"]);
    expect(result).toMatchObject({
      repo: "openai-community/gpt2-xl",
      revision: commit,
      license: "mit",
      convertedFrom: "model.safetensors",
    });
    expect(hub.served.filter((s) => s.path === "model.safetensors").map((s) => s.status)).toEqual([
      200, 206,
    ]);
    expect(hub.resolves("pytorch_model.bin")).toHaveLength(0);
    // The weights were only the means: the directory holds the ONNX (graph and external weights)
    // and its description.
    expect((await readdir(result.dir)).sort()).toEqual([
      ".pull.json",
      "config.json",
      "imagine-model.json",
      "model.onnx",
      "model.onnx.data",
    ]);
    const metadata = JSON.parse(await readFile(join(result.dir, "imagine-model.json"), "utf8"));
    expect(metadata).toMatchObject({
      onnx: "model.onnx",
      tags: null,
      meanCaptionTokens: 20,
      architecture: { nLayer: 2, nEmbd: 32 },
      provenance: {
        baseModel: "openai-community/gpt2-xl",
        revision: commit,
        license: "mit",
        convertedFrom: "model.safetensors",
        converter: "training/export_onnx.py",
      },
    });
    await runsInEngine(result.dir);

    // Same commit again: nothing fetched but config.json's check, nothing converted.
    const servedBefore = hub.served.length;
    const again = await pull("gpt2-xl", {
      onFile: (event) => {
        if (event.kind === "convert") events.push("converted again");
      },
    });
    expect(events).toEqual(["convert model.safetensors"]);
    expect(hub.served.length).toBe(servedBefore);
    expect(again.files.every((f) => f.skipped)).toBe(true);
  }, 120_000);

  it("--keep-weights leaves a checkpoint that training code can start from", async () => {
    hub.addRepo("openai-community/gpt2-xl", checkpoint);
    const result = await pull("gpt2-xl", { keepWeights: true });
    expect(result.files.map((f) => f.path).sort()).toEqual([
      "config.json",
      "imagine-model.json",
      "model.onnx",
      "model.onnx.data",
      "model.safetensors",
    ]);
    expect(sha256(readFileSync(join(result.dir, "model.safetensors")))).toBe(
      sha256(checkpoint["model.safetensors"] as Buffer),
    );
    const loaded = await run(PYTHON, [
      "-c",
      `import sys; sys.path.insert(0, ${JSON.stringify(join(ROOT, "training"))}); from checkpoint import load_pretrained; print(load_pretrained(sys.argv[1]).config.n_layer)`,
      result.dir,
    ]);
    expect(loaded.stdout.trim()).toBe("2");
  }, 120_000);

  it("without torch: a clear message before any weights are downloaded", async () => {
    hub.addRepo("openai-community/gpt2-xl", checkpoint);
    // A python3 whose torch cannot be imported, as on a machine without python3-torch.
    const shadow = join(modelsDir, "no-torch");
    await mkdir(join(shadow, "torch"), { recursive: true });
    await writeFile(
      join(shadow, "torch", "__init__.py"),
      "raise ModuleNotFoundError(\"No module named 'torch'\")\n",
    );
    const error = await failure(
      pull("gpt2-xl", {
        converter: { python: PYTHON, env: { ...process.env, PYTHONPATH: shadow } },
      }),
    );
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(
      /openai-community\/gpt2-xl publishes PyTorch weights \(model\.safetensors\) but no ONNX export/,
    );
    expect(error.message).toMatch(
      /cannot import torch \(ModuleNotFoundError: No module named 'torch'\)/,
    );
    expect(error.message).toMatch(/apt-get install python3-torch/);
    expect(error.message).toMatch(/IMAGINE_PYTHON/);
    expect(hub.resolves("model.safetensors")).toHaveLength(0);

    const missing = await failure(
      pull("gpt2-xl", { converter: { python: join(modelsDir, "no-such-python") } }),
    );
    expect(missing.message).toContain(`there is no Python at ${join(modelsDir, "no-such-python")}`);
    expect(hub.resolves("model.safetensors")).toHaveLength(0);
  });

  it("the CLI finds the interpreter through IMAGINE_PYTHON", async () => {
    hub.addRepo("openai-community/gpt2-xl", checkpoint);
    const missing = await runCli(["models", "pull", "gpt2-xl", "--dir", modelsDir], {
      HF_ENDPOINT: hub.url,
      IMAGINE_DATA_DIR: join(modelsDir, "data"),
      IMAGINE_PYTHON: join(modelsDir, "no-such-python"),
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("there is no Python at");
  });

  it("a repository with neither ONNX nor weights says so", async () => {
    hub.addRepo("lab/empty-gpt2", { "config.json": TINY_CONFIG, "README.md": "#\n" });
    const error = await failure(pull("lab/empty-gpt2"));
    expect(error.message).toMatch(/no \.onnx file and no PyTorch weights/);
  });
});

function silentLogger() {
  const noop = () => {};
  const logger = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    child: () => logger,
  };
  return logger as unknown as ConstructorParameters<typeof PromptArms>[2];
}
