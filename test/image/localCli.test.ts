/**
 * `imagine-bot imagine "a lighthouse"` with IMAGE_BACKEND=local: the command line renders with
 * the stand-in Stable Diffusion (test/fixtures/tiny-sd/sd1) in its own process, no server, and
 * writes a PNG whose parameters name the model and the sampler.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseA1111Parameters, readParametersChunk } from "../../src/core/image/png.js";
import { runCli } from "../helpers/cli.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "fixtures", "tiny-sd", "sd1");

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "imagine-local-cli-"));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("imagine-bot imagine with IMAGE_BACKEND=local", () => {
  it("renders with the local model and writes the PNG", async () => {
    const configFile = join(root, "config.json");
    // The stand-in renders 64×64; two steps keep the test short.
    writeFileSync(
      configFile,
      JSON.stringify({ image: { local: { width: 64, height: 64, steps: 2 } } }),
    );
    const out = join(root, "out");
    const env = {
      IMAGE_BACKEND: "local",
      SD_MODEL_DIR: MODEL_DIR,
      SD_DEVICE: "cpu",
      IMAGINE_CONFIG: configFile,
      IMAGINE_DATA_DIR: join(root, "data"),
    };
    const { code, stdout, stderr } = await runCli(
      ["imagine", "a lighthouse", "--seed", "3", "--out", out, "--json"],
      env,
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as {
      images: { path: string; seed: number; prompt: string }[];
    };
    expect(result.images).toHaveLength(1);
    const [image] = result.images;
    expect(readdirSync(out)).toHaveLength(1);
    const png = readFileSync(image?.path as string);
    expect(await sharp(png).metadata()).toMatchObject({ format: "png", width: 64, height: 64 });
    expect(parseA1111Parameters(readParametersChunk(png) as string)).toMatchObject({
      prompt: image?.prompt,
      seed: 3,
      sampler: "Euler",
      model: "sd1",
      width: 64,
      height: 64,
    });
  });

  it("exits 2 naming SD_MODEL_DIR when it is not set", async () => {
    const { code, stderr } = await runCli(["imagine", "a lighthouse"], {
      IMAGE_BACKEND: "local",
      IMAGINE_DATA_DIR: join(root, "data2"),
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/SD_MODEL_DIR/);
  });
});
