import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { BotError } from "../../src/core/errors.js";
import { decodeToPng } from "../../src/core/image/decode.js";
import {
  crc32,
  formatA1111Parameters,
  isPng,
  namesArm,
  type PngParameters,
  parseA1111Parameters,
  pngChunkTypes,
  readParametersChunk,
  withoutMetadata,
  withoutTextChunks,
  withParametersChunk,
} from "../../src/core/image/png.js";
import { RemoteCallError } from "../../src/core/retry.js";
import { HTML_PAGE, makeImage } from "./images.js";

const PARAMETERS: PngParameters = {
  prompt: "a lighthouse at dusk, oil painting",
  negativePrompt: "blurry",
  steps: 30,
  sampler: "Euler a",
  cfgScale: 7.5,
  seed: 42,
  width: 768,
  height: 768,
  model: "stabilityai/stable-diffusion-2",
};

/** The chunk types of a PNG, in file order. */
function chunkTypes(png: Buffer): string[] {
  const types: string[] = [];
  for (let offset = 8; offset < png.length; ) {
    const length = png.readUInt32BE(offset);
    types.push(png.toString("latin1", offset + 4, offset + 8));
    offset += 12 + length;
  }
  return types;
}

/** A chunk built by hand (length, type, data, CRC), to stand in for another tool's writer. */
function rawChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(Buffer.from(type, "latin1"), data), 8 + data.length);
  return out;
}

/**
 * A PNG carrying the text chunks ComfyUI's SaveImage writes ("prompt" and "workflow" tEXt) and
 * an A1111 "parameters" stored compressed (zTXt), inserted right after IHDR (8 + 25 bytes).
 */
async function pngWithForeignText(): Promise<Buffer> {
  const png = await makeImage("png", 16, 16);
  const text = (keyword: string, value: string) =>
    rawChunk(
      "tEXt",
      Buffer.concat([Buffer.from(`${keyword}\0`, "latin1"), Buffer.from(value, "latin1")]),
    );
  const ztxt = rawChunk(
    "zTXt",
    Buffer.concat([
      Buffer.from("parameters\0\0", "latin1"),
      deflateSync(Buffer.from("old parameters")),
    ]),
  );
  return Buffer.concat([
    png.subarray(0, 33),
    text("prompt", '{"3":{"class_type":"KSampler"}}'),
    text("workflow", '{"nodes":[]}'),
    ztxt,
    png.subarray(33),
  ]);
}

describe("AUTOMATIC1111 parameters text", () => {
  it("matches A1111's create_infotext output for a known example", () => {
    expect(formatA1111Parameters(PARAMETERS)).toBe(
      "a lighthouse at dusk, oil painting\n" +
        "Negative prompt: blurry\n" +
        "Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 768x768, Model: stabilityai/stable-diffusion-2",
    );
  });

  it("leaves the Negative prompt line and an absent sampler out, prints a float CFG as Python does", () => {
    expect(
      formatA1111Parameters({ ...PARAMETERS, negativePrompt: "", sampler: undefined, cfgScale: 7 }),
    ).toBe(
      "a lighthouse at dusk, oil painting\nSteps: 30, CFG scale: 7.0, Seed: 42, Size: 768x768, Model: stabilityai/stable-diffusion-2",
    );
  });

  it("JSON-quotes values containing a comma, colon or newline, as A1111's quote() does", () => {
    const text = formatA1111Parameters({
      ...PARAMETERS,
      model: "sd:2, 768-v",
      extra: { Backend: "comfyui", Note: 'say "hi", then\nleave' },
    });
    expect(text.split("\n").at(-1)).toBe(
      'Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 768x768, Model: "sd:2, 768-v", Backend: comfyui, Note: "say \\"hi\\", then\\nleave"',
    );
    expect(parseA1111Parameters(text)).toMatchObject({
      model: "sd:2, 768-v",
      extra: { Backend: "comfyui", Note: 'say "hi", then\nleave' },
    });
  });

  it("parses what it formats", () => {
    const parsed = parseA1111Parameters(formatA1111Parameters(PARAMETERS));
    expect(parsed).toEqual({ ...PARAMETERS, extra: {} });
  });

  it("parses an infotext written by A1111 itself", () => {
    const text =
      "masterpiece, a cat\nwearing a hat\n" +
      "Negative prompt: lowres, bad anatomy\n" +
      "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, " +
      "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0";
    expect(parseA1111Parameters(text)).toEqual({
      prompt: "masterpiece, a cat\nwearing a hat",
      negativePrompt: "lowres, bad anatomy",
      steps: 20,
      sampler: "DPM++ 2M Karras",
      cfgScale: 7,
      seed: 1234567890,
      width: 512,
      height: 768,
      model: "v1-5-pruned-emaonly",
      extra: { "Model hash": "6ce0161689", Version: "v1.6.0" },
    });
  });

  it("treats a text without a parameters line as all prompt", () => {
    expect(parseA1111Parameters("just a prompt, nothing else")).toEqual({
      prompt: "just a prompt, nothing else",
      extra: {},
    });
  });

  it("refuses to write the study arm, under any spelling", () => {
    for (const key of ["arm", "Arm", "study arm", "arm_name", "armName", "Prompt arms"]) {
      expect(namesArm(key), key).toBe(true);
      expect(() => formatA1111Parameters({ ...PARAMETERS, extra: { [key]: "ft-tags" } })).toThrow(
        /study arm never goes into image metadata/,
      );
    }
    for (const key of ["Warmup", "Alarm", "Farm size", "Backend"])
      expect(namesArm(key), key).toBe(false);
    expect(() => formatA1111Parameters({ ...PARAMETERS, extra: { "bad:key": "x" } })).toThrow(
      BotError,
    );
  });
});

describe("PNG parameters chunk", () => {
  it("computes PNG's CRC-32", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(crc32(Buffer.from("IEND"))).toBe(0xae426082);
  });

  it("round-trips: write, read back, parse; libvips still decodes it and sees the chunk", async () => {
    const png = await makeImage("png", 32, 24);
    const text = formatA1111Parameters(PARAMETERS);
    const tagged = withParametersChunk(png, text);
    expect(readParametersChunk(tagged)).toBe(text);
    expect(parseA1111Parameters(readParametersChunk(tagged) as string)).toMatchObject(PARAMETERS);
    const types = chunkTypes(tagged);
    expect(types[0]).toBe("IHDR");
    expect(types.indexOf("tEXt")).toBeLessThan(types.indexOf("IDAT"));
    const metadata = await sharp(tagged).metadata();
    expect([metadata.width, metadata.height]).toEqual([32, 24]);
    expect(metadata.comments).toContainEqual({ keyword: "parameters", text });
    // The pixels are untouched.
    const [before, after] = await Promise.all(
      [png, tagged].map((bytes) => sharp(bytes).raw().toBuffer()),
    );
    expect(after?.equals(before as Buffer)).toBe(true);
  });

  it("replaces an existing parameters chunk instead of adding a second", async () => {
    const once = withParametersChunk(await makeImage("png", 8, 8), "first");
    const twice = withParametersChunk(once, "second");
    expect(readParametersChunk(twice)).toBe("second");
    expect(chunkTypes(twice).filter((type) => type === "tEXt")).toHaveLength(1);
    expect((await sharp(twice).metadata()).comments).toEqual([
      { keyword: "parameters", text: "second" },
    ]);
  });

  it("writes Latin-1 text as tEXt and anything else as UTF-8 iTXt", async () => {
    const png = await makeImage("png", 8, 8);
    const latin = withParametersChunk(png, "café au lait\nSteps: 1");
    expect(chunkTypes(latin)).toContain("tEXt");
    expect(readParametersChunk(latin)).toBe("café au lait\nSteps: 1");

    const prompt = "東京タワー at night, 🌃, ночь";
    const text = formatA1111Parameters({ ...PARAMETERS, prompt });
    const tagged = withParametersChunk(png, text);
    expect(chunkTypes(tagged)).toContain("iTXt");
    expect(chunkTypes(tagged)).not.toContain("tEXt");
    expect(readParametersChunk(tagged)).toBe(text);
    expect(parseA1111Parameters(readParametersChunk(tagged) as string).prompt).toBe(prompt);
    expect((await sharp(tagged).metadata()).comments).toContainEqual({
      keyword: "parameters",
      text,
    });
  });

  it("answers undefined for a PNG without the chunk and refuses what is not a PNG", async () => {
    expect(readParametersChunk(await makeImage("png", 8, 8))).toBeUndefined();
    expect(() => readParametersChunk(Buffer.from(HTML_PAGE))).toThrow(/Not a PNG/);
    const png = await makeImage("png", 8, 8);
    expect(() => withParametersChunk(png.subarray(0, 40), "x")).toThrow(/truncated/);
  });

  it("strips the text chunks another tool wrote", async () => {
    const foreign = await pngWithForeignText();
    // libvips reads the hand-made chunks, so they (and the CRC) are well formed.
    expect((await sharp(foreign).metadata()).comments).toHaveLength(3);
    expect(readParametersChunk(foreign)).toBe("old parameters");
    const replaced = withParametersChunk(foreign, "new");
    expect(chunkTypes(replaced).filter((type) => type === "zTXt")).toHaveLength(0);
    expect(readParametersChunk(replaced)).toBe("new");
    const stripped = withoutTextChunks(foreign);
    expect(readParametersChunk(stripped)).toBeUndefined();
    expect((await sharp(stripped).metadata()).width).toBe(16);
  });
});

describe("blind copies (withoutMetadata)", () => {
  /** What a study upload must never carry, in any encoding. */
  const SECRETS = [
    "a lighthouse at dusk",
    "stabilityai/stable-diffusion-2",
    "ft-no-tags",
    "Euler a",
  ];
  const IMAGE_ONLY = new Set(["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]);

  /** Every ancillary chunk kind a backend or tool might add, plus bytes after IEND. */
  async function pngWithEverything(base: Buffer): Promise<Buffer> {
    const parameters = formatA1111Parameters(PARAMETERS);
    const tagged = withParametersChunk(base, `${parameters}, Study arm: ft-no-tags`);
    const latin = (text: string) => Buffer.from(text, "latin1");
    const ancillary = [
      rawChunk("zTXt", Buffer.concat([latin("workflow\0\0"), deflateSync(latin(parameters))])),
      rawChunk(
        "iTXt",
        Buffer.concat([latin("Description\0\0\0en\0\0"), Buffer.from("ft-no-tags 東京", "utf8")]),
      ),
      rawChunk(
        "eXIf",
        Buffer.concat([latin("MM\0*"), latin("Model=stabilityai/stable-diffusion-2")]),
      ),
      rawChunk("tIME", Buffer.from([0x07, 0xe9, 1, 2, 3, 4, 5])),
      rawChunk("iCCP", Buffer.concat([latin("ft-no-tags\0\0"), deflateSync(latin("profile"))])),
      rawChunk("gAMA", Buffer.from([0, 0, 0xb1, 0x8f])),
      rawChunk("pHYs", Buffer.from([0, 0, 0x0b, 0x13, 0, 0, 0x0b, 0x13, 1])),
      rawChunk("prVt", latin("Sampler: Euler a")),
    ];
    const after = tagged.indexOf("IDAT", 8, "latin1") - 4;
    return Buffer.concat([
      tagged.subarray(0, after),
      ...ancillary,
      tagged.subarray(after),
      latin("trailing a lighthouse at dusk"),
    ]);
  }

  function expectBlind(bytes: Buffer): void {
    for (const type of pngChunkTypes(bytes)) expect(IMAGE_ONLY.has(type), type).toBe(true);
    for (const secret of SECRETS) {
      expect(bytes.includes(Buffer.from(secret, "latin1")), secret).toBe(false);
      expect(bytes.includes(Buffer.from(secret, "utf8")), secret).toBe(false);
    }
    // Nothing after IEND: the file ends with IEND's fixed 12 bytes.
    expect(bytes.subarray(-8).toString("latin1", 0, 4)).toBe("IEND");
  }

  it("keeps only the image chunks, byte for byte, and the same pixels", async () => {
    const base = await makeImage("png", 24, 16);
    const loaded = await pngWithEverything(base);
    // The source really carries every secret (so the checks below can fail).
    for (const secret of SECRETS) expect(loaded.includes(Buffer.from(secret, "latin1"))).toBe(true);
    expect(pngChunkTypes(loaded)).toEqual(
      expect.arrayContaining([
        "tEXt",
        "zTXt",
        "iTXt",
        "eXIf",
        "tIME",
        "iCCP",
        "gAMA",
        "pHYs",
        "prVt",
      ]),
    );

    const blind = withoutMetadata(loaded);
    expectBlind(blind);
    expect(readParametersChunk(blind)).toBeUndefined();
    expect(pngChunkTypes(blind)).toEqual(pngChunkTypes(base).filter((t) => IMAGE_ONLY.has(t)));
    const metadata = await sharp(blind).metadata();
    expect(metadata.comments ?? []).toEqual([]);
    expect([metadata.width, metadata.height]).toEqual([24, 16]);
    const [before, after] = await Promise.all(
      [base, blind].map((bytes) => sharp(bytes).raw().toBuffer()),
    );
    expect(after?.equals(before as Buffer)).toBe(true);
  });

  it("keeps a palette image's PLTE and tRNS so its pixels and transparency stay", async () => {
    const palette = await sharp({
      create: {
        width: 8,
        height: 8,
        channels: 4,
        background: { r: 10, g: 200, b: 30, alpha: 0.5 },
      },
    })
      .png({ palette: true })
      .toBuffer();
    expect(pngChunkTypes(palette)).toEqual(expect.arrayContaining(["PLTE", "tRNS"]));
    const blind = withoutMetadata(await pngWithEverything(palette));
    expectBlind(blind);
    expect(pngChunkTypes(blind)).toEqual(expect.arrayContaining(["PLTE", "tRNS"]));
    const [before, after] = await Promise.all(
      [palette, blind].map((bytes) => sharp(bytes).ensureAlpha().raw().toBuffer()),
    );
    expect(after?.equals(before as Buffer)).toBe(true);
  });

  it("refuses what is not a whole PNG", async () => {
    const png = await makeImage("png", 8, 8);
    expect(() => withoutMetadata(Buffer.from(HTML_PAGE))).toThrow(/Not a PNG/);
    expect(() => withoutMetadata(png.subarray(0, png.length - 12))).toThrow(/IEND/);
  });
});

describe("decodeToPng", () => {
  it("keeps a PNG's pixels, drops its text chunks and reports the decoded size", async () => {
    const foreign = await pngWithForeignText();
    const decoded = await decodeToPng(foreign, "test server");
    expect([decoded.width, decoded.height]).toEqual([16, 16]);
    expect(readParametersChunk(decoded.png)).toBeUndefined();
  });

  it("re-encodes a JPEG as PNG", async () => {
    const decoded = await decodeToPng(await makeImage("jpeg", 40, 30), "test server");
    expect(isPng(decoded.png)).toBe(true);
    expect([decoded.width, decoded.height]).toEqual([40, 30]);
  });

  it("rejects truncated images, HTML and empty bodies with a non-retryable error", async () => {
    const png = await makeImage("png", 64, 64);
    const jpeg = await makeImage("jpeg", 64, 64);
    const cases: [Buffer, RegExp][] = [
      [png.subarray(0, png.length / 2), /truncated or corrupt PNG/],
      [jpeg.subarray(0, jpeg.length / 2), /truncated or corrupt JPEG/],
      [Buffer.from(HTML_PAGE), /an HTML page/],
      [Buffer.from('{"error":"x"}'), /a JSON body/],
      [Buffer.alloc(0), /an empty body/],
    ];
    for (const [bytes, message] of cases) {
      const error = await decodeToPng(bytes, "test server", "text/plain").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteCallError);
      expect((error as RemoteCallError).retryable).toBe(false);
      expect((error as Error).message).toMatch(/^test server returned /);
      expect((error as Error).message).toMatch(message);
    }
  });
});
