import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPullProgress } from "../../src/adapters/cli/models.js";
import { FakeHub, sha256 } from "../fakes/hub.js";
import { runCli } from "../helpers/cli.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const ONNX = readFileSync(join(ROOT, "models", "tiny-caption-gpt2", "model.onnx"));
const CONFIG = JSON.stringify({
  model_type: "gpt2",
  n_embd: 32,
  n_head: 2,
  n_layer: 2,
  n_positions: 64,
  vocab_size: 50257,
});

describe("imagine-bot models pull", () => {
  let hub: FakeHub;
  let modelsDir: string;
  beforeEach(async () => {
    hub = await new FakeHub().start();
    modelsDir = await mkdtemp(join(tmpdir(), "imagine-pull-cli-"));
  });
  afterEach(async () => {
    await hub.stop();
    await rm(modelsDir, { recursive: true, force: true });
  });

  it("--json prints the summary, then a prompt runs on the pulled model", async () => {
    const commit = hub.addRepo("Xenova/gpt2", {
      "config.json": CONFIG,
      "onnx/decoder_model_merged.onnx": ONNX,
    });
    const pulled = await runCli(["models", "pull", "gpt2", "--dir", modelsDir, "--json"], {
      HF_ENDPOINT: hub.url,
      IMAGINE_DATA_DIR: join(modelsDir, "data"),
    });
    expect(pulled.stderr).toBe(""); // not a TTY: no progress line
    expect(pulled.code).toBe(0);
    const result = JSON.parse(pulled.stdout);
    expect(Object.keys(result).sort()).toEqual([
      "arm",
      "dir",
      "files",
      "kind",
      "license",
      "name",
      "registry",
      "repo",
      "revision",
    ]);
    expect(result).toMatchObject({ arm: "gpt2", kind: "prompt", license: "mit" });
    expect(result).toMatchObject({
      name: "gpt2",
      repo: "Xenova/gpt2",
      revision: commit,
      dir: join(modelsDir, "gpt2"),
    });
    for (const file of result.files) {
      expect(Object.keys(file).sort()).toEqual(["bytes", "path", "sha256", "skipped"]);
    }
    expect(result.files[1]).toEqual({
      path: "onnx/decoder_model_merged.onnx",
      bytes: ONNX.length,
      sha256: sha256(ONNX),
      skipped: false,
    });

    const prompt = await runCli([
      "prompt",
      "a lighthouse",
      "--model",
      result.dir,
      "--seed",
      "1",
      "--json",
    ]);
    expect(prompt.code).toBe(0);
    expect(JSON.parse(prompt.stdout).prompts[0].text.startsWith("a lighthouse")).toBe(true);

    const again = await runCli(["models", "pull", "--dir", modelsDir], {
      HF_ENDPOINT: hub.url,
      IMAGINE_DATA_DIR: join(modelsDir, "data"),
    });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/present +onnx\/decoder_model_merged\.onnx/);
  });

  it("sends HF_TOKEN and exits 2 with what to do on 401 and 404", async () => {
    hub.addRepo("lab/private", { "config.json": CONFIG, "model.onnx": ONNX }, { token: "hf_x" });
    const denied = await runCli(["models", "pull", "lab/private", "--dir", modelsDir], {
      HF_ENDPOINT: hub.url,
      IMAGINE_DATA_DIR: join(modelsDir, "data"),
    });
    expect(denied.code).toBe(2);
    expect(denied.stderr).toMatch(/^imagine-bot: lab\/private needs authentication .*set HF_TOKEN/);
    expect(denied.stdout).toBe("");

    const allowed = await runCli(["models", "pull", "lab/private", "--dir", modelsDir, "--json"], {
      HF_ENDPOINT: hub.url,
      IMAGINE_DATA_DIR: join(modelsDir, "data"),
      HF_TOKEN: "hf_x",
    });
    expect(allowed.code).toBe(0);

    const missing = await runCli(
      ["models", "pull", "lab/private", "--revision", "v9", "--dir", modelsDir],
      {
        HF_ENDPOINT: hub.url,
        IMAGINE_DATA_DIR: join(modelsDir, "data"),
        HF_TOKEN: "hf_x",
      },
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/Revision "v9" not found in lab\/private/);
  });
});

describe("the progress line", () => {
  function stream(isTTY: boolean) {
    const writes: string[] = [];
    return { isTTY, columns: 120, writes, write: (text: string) => writes.push(text) };
  }

  it("shows bytes, percent, MB/s and ETA on one updating line per file", () => {
    const tty = stream(true);
    let clock = 0;
    const progress = createPullProgress(tty, { intervalMs: 0, now: () => clock });
    const path = "onnx/decoder_model_merged.onnx";
    progress.onFile?.({ kind: "start", path, total: 100e6, resumedFrom: 20e6 });
    clock = 2000;
    progress.onFile?.({
      kind: "progress",
      progress: { path, bytes: 60e6, total: 100e6, resumedFrom: 20e6 },
    });
    progress.onFile?.({
      kind: "done",
      file: { path, bytes: 100e6, sha256: "x", skipped: false },
    });
    progress.done();
    expect(tty.writes[0]).toMatch(/^\r.*resuming at 20\.0 MB/);
    expect(tty.writes[1]).toBe(`\r${path}  60.0/100.0 MB  60.0%  20.0 MB/s  ETA 2s\u001b[K`);
    expect(tty.writes.slice(2).join("").endsWith("verified\u001b[K\n")).toBe(true);
    expect(tty.writes.join("").split("\n")).toHaveLength(2);
  });

  it("is quiet when stderr is not a terminal", () => {
    const pipe = stream(false);
    const progress = createPullProgress(pipe);
    expect(progress.onFile).toBeUndefined();
    progress.done();
    expect(pipe.writes).toEqual([]);
  });
});
