/**
 * `models pull` for image models: the sd-turbo / sd21 aliases (and any repository in the
 * diffusers ONNX layout) against the fake Hub, serving the stand-in test/fixtures/tiny-sd/
 * sd2-fp16-v (fp16, its UNet weights in the external file unet/weights.pb) in the layout the
 * Hub's exports have, with the parts text-to-image does not need beside it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { UserError } from "../../src/core/errors.js";
import { createLocalImageBackend } from "../../src/core/image/local/backend.js";
import { type PullOptions, pullModel, resolveSource } from "../../src/core/models/pull.js";
import { RemoteCallError } from "../../src/core/retry.js";
import { sha256 } from "../fakes/hub.js";
import { runCli } from "../helpers/cli.js";
import { FAST_RETRY, failure, useFakeHub } from "./pullHarness.js";

const STAND_IN = resolve(import.meta.dirname, "..", "fixtures", "tiny-sd", "sd2-fp16-v");
const WEIGHTS = "unet/weights.pb";

function filesUnder(dir: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(dir, path)] = readFileSync(path);
    }
  };
  walk(dir);
  return files;
}

/** The stand-in as a Hub export publishes it: plus a VAE encoder, a ControlNet, a README and a licence. */
const REPO_FILES: Record<string, Buffer | string> = {
  ...filesUnder(STAND_IN),
  "vae_encoder/model.onnx": Buffer.alloc(50_000, 7),
  "controlnet/model.onnx": Buffer.alloc(50_000, 8),
  "README.md": "# an SD export\n",
  LICENSE: "licence text\n",
};

const pulls = useFakeHub("imagine-sd-pull-");

function pull(options: Partial<PullOptions> = {}) {
  return pullModel({
    source: "sd-turbo",
    modelsDir: pulls.modelsDir,
    endpoint: pulls.hub.url,
    retry: FAST_RETRY,
    ...options,
  });
}

describe("models pull, Stable Diffusion layout", () => {
  it("names the image aliases' repositories", () => {
    expect(resolveSource("sd-turbo")).toMatchObject({
      repo: "TensorStack/SD-Turbo-onnx",
      name: "sd-turbo",
    });
    expect(resolveSource("sd21").repo).toBe("IlyasMoutawwakil/stable-diffusion-2-1-onnx");
  });

  it("fetches what text-to-image needs, verified, with the graph's external data, and it renders", async () => {
    pulls.hub.addRepo("TensorStack/SD-Turbo-onnx", REPO_FILES, { license: "sai-nc-community" });
    const result = await pull();
    expect(result).toMatchObject({
      kind: "stable-diffusion",
      repo: "TensorStack/SD-Turbo-onnx",
      license: "sai-nc-community",
    });
    const paths = result.files.map((file) => file.path).sort();
    expect(paths).toContain(WEIGHTS); // named only inside unet/model.onnx
    expect(paths).toContain("vae_decoder/config.json");
    expect(paths).not.toContain("vae_encoder/model.onnx");
    expect(paths).not.toContain("README.md");
    expect(pulls.hub.resolves("controlnet/model.onnx")).toHaveLength(0);
    expect(pulls.hub.resolves("vae_encoder/model.onnx")).toHaveLength(0);
    for (const file of result.files) {
      expect(sha256(readFileSync(join(result.dir, file.path)))).toBe(
        sha256(REPO_FILES[file.path] as Buffer),
      );
    }
    const backend = createLocalImageBackend({ modelDir: result.dir, device: "cpu" });
    try {
      const image = await backend.render({
        prompt: "a lighthouse",
        width: 64,
        height: 64,
        steps: 2,
        guidance: 3,
        seed: 1,
      });
      expect(image.model).toBe("TensorStack/SD-Turbo-onnx"); // from the pull's manifest
      expect((await sharp(image.png).metadata()).width).toBe(64);
    } finally {
      await backend.close();
    }

    // Pulling again finds everything in place and downloads nothing.
    const before = pulls.hub.served.length;
    const again = await pull();
    expect(again.files.every((file) => file.skipped)).toBe(true);
    expect(pulls.hub.served.length).toBe(before);
  });

  it("resumes an interrupted download of the UNet's weights with a Range request", async () => {
    pulls.hub.addRepo("TensorStack/SD-Turbo-onnx", REPO_FILES);
    pulls.hub.fault(WEIGHTS, { kind: "cut", afterBytes: 40_000 });
    const error = await failure(pull({ retry: { ...FAST_RETRY, retries: 0 } }));
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(existsSync(join(pulls.modelsDir, "sd-turbo"))).toBe(false);
    const result = await pull();
    expect(pulls.hub.served.filter((s) => s.path === WEIGHTS).map((s) => s.range)).toEqual([
      undefined,
      "bytes=40000-",
    ]);
    expect(sha256(readFileSync(join(result.dir, WEIGHTS)))).toBe(
      sha256(REPO_FILES[WEIGHTS] as Buffer),
    );
  });

  it("refuses a corrupted file and keeps no directory", async () => {
    pulls.hub.addRepo("TensorStack/SD-Turbo-onnx", REPO_FILES);
    pulls.hub.fault("unet/model.onnx", { kind: "corrupt" });
    const error = await failure(pull({ retry: { ...FAST_RETRY, retries: 0 } }));
    expect(error.message).toMatch(/corrupt/);
    expect(existsSync(join(pulls.modelsDir, "sd-turbo"))).toBe(false);
  });

  it("names a missing part of the layout before downloading the large files", async () => {
    const { "vae_decoder/model.onnx": _, ...withoutVae } = REPO_FILES;
    pulls.hub.addRepo("TensorStack/SD-Turbo-onnx", withoutVae);
    const error = await failure(pull());
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(
      /has no vae_decoder\/model.onnx \(needed by the local Stable Diffusion backend\)/,
    );
    expect(pulls.hub.resolves("unet/model.onnx")).toHaveLength(0);
  });

  it("pulls any repository in the diffusers layout by id; the CLI says how to render with it and registers no arm", async () => {
    pulls.hub.addRepo("someone/my-sd-onnx", REPO_FILES);
    const dataDir = join(pulls.modelsDir, "data");
    const { code, stdout, stderr } = await runCli(
      ["models", "pull", "someone/my-sd-onnx", "--dir", pulls.modelsDir],
      {
        HF_ENDPOINT: pulls.hub.url,
        IMAGINE_DATA_DIR: dataDir,
      },
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain(
      `IMAGE_BACKEND=local SD_MODEL_DIR=${join(pulls.modelsDir, "my-sd-onnx")}`,
    );
    expect(stdout).not.toMatch(/Registered as arm/);
    expect(existsSync(join(dataDir, "pulled-arms.json"))).toBe(false);
  });
});
