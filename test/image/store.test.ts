import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { beforeEach, describe, expect, it } from "vitest";
import { BotError } from "../../src/core/errors.js";
import {
  formatA1111Parameters,
  type PngParameters,
  readParametersChunk,
} from "../../src/core/image/png.js";
import { saveImage } from "../../src/core/image/store.js";
import { makeImage } from "./images.js";

const PARAMETERS: PngParameters = {
  prompt: "a lighthouse at dusk, oil painting",
  steps: 30,
  sampler: "Euler a",
  cfgScale: 7.5,
  seed: 42,
  width: 32,
  height: 32,
  model: "stabilityai/stable-diffusion-2",
};

let dataDir: string;
let png: Buffer;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-store-"));
  png = await makeImage("png", 32, 32);
});

describe("saveImage", () => {
  it("writes <dataDir>/images/<day>/<id>.png with the parameters chunk and returns the relative path", async () => {
    const { path } = await saveImage(
      dataDir,
      { id: "gen_01HX", createdAt: "2024-05-01T12:00:00.000Z" },
      png,
      PARAMETERS,
    );
    expect(path).toBe("images/2024-05-01/gen_01HX.png");
    const written = readFileSync(join(dataDir, path));
    expect(readParametersChunk(written)).toBe(formatA1111Parameters(PARAMETERS));
    expect((await sharp(written).metadata()).width).toBe(32);
    // Only the image: no temporary file left beside it.
    expect(readdirSync(join(dataDir, "images", "2024-05-01"))).toEqual(["gen_01HX.png"]);
  });

  it("files by the UTC day of createdAt", async () => {
    const { path } = await saveImage(
      dataDir,
      { id: "late", createdAt: "2024-05-01T23:30:00-02:00" },
      png,
      PARAMETERS,
    );
    expect(path).toBe("images/2024-05-02/late.png");
  });

  it("replaces an existing file as a whole", async () => {
    const folder = join(dataDir, "images", "2024-05-01");
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "same.png"), "old bytes that are much longer than nothing");
    await saveImage(dataDir, { id: "same", createdAt: "2024-05-01T00:00:00Z" }, png, PARAMETERS);
    expect(readParametersChunk(readFileSync(join(folder, "same.png")))).toContain("Seed: 42");
  });

  it("writes through a temporary file: a failed rename leaves the destination and no debris", async () => {
    // A directory where the image should go makes the final rename fail.
    const folder = join(dataDir, "images", "2024-05-01");
    mkdirSync(join(folder, "blocked.png"), { recursive: true });
    await expect(
      saveImage(dataDir, { id: "blocked", createdAt: "2024-05-01T00:00:00Z" }, png, PARAMETERS),
    ).rejects.toThrow();
    expect(statSync(join(folder, "blocked.png")).isDirectory()).toBe(true);
    expect(readdirSync(folder)).toEqual(["blocked.png"]);
  });

  it("refuses ids that are not plain file names, bad dates and the arm", async () => {
    const save = (id: string, createdAt: string, parameters = PARAMETERS) =>
      saveImage(dataDir, { id, createdAt }, png, parameters);
    await expect(save("../escape", "2024-05-01T00:00:00Z")).rejects.toBeInstanceOf(BotError);
    await expect(save("a/b", "2024-05-01T00:00:00Z")).rejects.toThrow(/cannot be a file name/);
    await expect(save("ok", "yesterday")).rejects.toThrow(/not a date/);
    await expect(
      save("ok", "2024-05-01T00:00:00Z", { ...PARAMETERS, extra: { arm: "ft-tags" } }),
    ).rejects.toThrow(/study arm/);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});
