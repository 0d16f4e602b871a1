/**
 * The imagine pipeline end to end: subject checks, prompts from a real (tiny) model or a scripted
 * generator, explicit-prompt resampling, a fake backend, PNGs with A1111 parameters, records.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/core/config.js";
import { BotError, UserError } from "../../src/core/errors.js";
import {
  parseA1111Parameters,
  pngChunkTypes,
  readParametersChunk,
} from "../../src/core/image/png.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import {
  createPipeline,
  derivedSeed,
  failureReference,
  type ImagineProgress,
  type Pipeline,
  type PipelineOptions,
  PROMPT_RESAMPLES,
} from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import {
  armsOf,
  FakeBackend,
  inTestSaveImage,
  MemoryGenerationStore,
  type SavedImage,
  ScriptedGenerator,
  testConfig,
} from "./fakes.js";

const filter = loadExplicitFilter({});
const silent = createLogger({ level: "silent" });

let dataDir: string;
let pipeline: Pipeline | undefined;
let promptArms: PromptArms | undefined;

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-pipeline-"));
});
afterEach(async () => {
  await pipeline?.close();
  await promptArms?.close();
  pipeline = undefined;
  promptArms = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

function makePipeline(
  overrides: Partial<PipelineOptions> & { config?: Config } = {},
): PipelineOptions & { store: MemoryGenerationStore; saved: SavedImage[]; backend: FakeBackend } {
  const saved: SavedImage[] = [];
  const options = {
    config: testConfig(dataDir),
    arms: armsOf(new ScriptedGenerator()),
    backend: new FakeBackend(),
    filter,
    store: new MemoryGenerationStore(),
    saveImage: inTestSaveImage(saved),
    logger: silent,
    ...overrides,
    saved,
  } as PipelineOptions & {
    store: MemoryGenerationStore;
    saved: SavedImage[];
    backend: FakeBackend;
  };
  pipeline = createPipeline(options);
  return options;
}

/**
 * A study upload, byte by byte: only image chunks (no text, eXIf, tIME or other ancillary chunk),
 * none of `secrets` (prompt, model: the saved file has them, so the check is not vacuous; the arm,
 * which not even the saved file has) anywhere in the bytes, the same pixels as the saved file.
 */
async function expectBlindUpload(
  upload: Buffer,
  saved: Buffer,
  { inSaved, arm }: { inSaved: string[]; arm: string },
): Promise<void> {
  for (const type of pngChunkTypes(upload)) {
    expect(["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]).toContain(type);
  }
  expect(readParametersChunk(upload)).toBeUndefined();
  for (const secret of inSaved) {
    expect(saved.includes(Buffer.from(secret, "utf8")), `saved file has ${secret}`).toBe(true);
  }
  for (const secret of [...inSaved, arm]) {
    for (const encoding of ["latin1", "utf8", "utf16le"] as const) {
      expect(upload.includes(Buffer.from(secret, encoding)), `upload has ${secret}`).toBe(false);
    }
  }
  const [a, b] = await Promise.all([upload, saved].map((bytes) => sharp(bytes).raw().toBuffer()));
  expect(a?.equals(b as Buffer)).toBe(true);
}

function recorder() {
  const events: ImagineProgress[] = [];
  return { events, onProgress: (event: ImagineProgress) => events.push(event) };
}

describe("imagine with the tiny model", () => {
  it("writes prompts, renders one image per prompt, saves PNGs with parameters and records", async () => {
    const config = testConfig(dataDir);
    promptArms = new PromptArms(config, {}, silent);
    // The real image store (src/core/image/store.ts) writes the PNG and its parameters chunk.
    const options = makePipeline({ config, arms: promptArms, saveImage });
    const { events, onProgress } = recorder();

    const result = await pipeline?.imagine(
      {
        subject: "a lighthouse",
        requester: "u1",
        platform: "discord",
        server: "g1",
        channel: "c1",
        count: 3,
        seed: 7,
        studyId: "s1",
      },
      onProgress,
    );
    if (!result) throw new Error("no result");

    expect(result.subject).toBe("a lighthouse");
    expect(result.seed).toBe(7);
    expect(result.generations).toHaveLength(3);
    expect(result.refused).toEqual([]);
    expect(options.backend.calls.map((c) => c.seed)).toEqual([7, 8, 9]);
    for (const call of options.backend.calls) {
      expect(call).toMatchObject({ width: 64, height: 64, steps: 20, guidance: 7 });
      expect(call.negativePrompt).toBe("blurry");
      expect(call.prompt.startsWith("a lighthouse")).toBe(true);
    }

    for (const [i, { generation, png, path }] of result.generations.entries()) {
      expect(generation).toMatchObject({
        platform: "discord",
        server: "g1",
        channel: "c1",
        requester: "u1",
        subject: "a lighthouse",
        arm: "ft-tags",
        seed: 7 + i,
        studyId: "s1",
        image: { backend: "fake", model: "fake/sd-2", width: 64, height: 64, steps: 20 },
      });
      expect(generation.prompt).toBe(options.backend.calls[i]?.prompt);
      expect(generation.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(generation.image.path).toBe(path);
      expect(generation.timings.totalMs).toBeGreaterThanOrEqual(generation.timings.renderMs);

      // The PNG as saved: decodable, with the A1111 parameters and without the arm.
      const file = readFileSync(join(dataDir, path));
      // The PNG to upload (a study generation): the same image, with no metadata at all.
      await expectBlindUpload(png, file, {
        inSaved: [generation.prompt, generation.image.model],
        arm: generation.arm,
      });
      expect((await sharp(file).metadata()).format).toBe("png");
      const text = readParametersChunk(file);
      expect(text).toBeDefined();
      expect(parseA1111Parameters(text as string)).toMatchObject({
        prompt: generation.prompt,
        negativePrompt: "blurry",
        steps: 20,
        sampler: "Euler a",
        cfgScale: 7,
        seed: 7 + i,
        width: 64,
        height: 64,
        model: "fake/sd-2",
      });
      expect(text).not.toMatch(/ft-tags|arm/i);
      expect(path).toMatch(/^images\/\d{4}-\d{2}-\d{2}\/[0-9a-f-]{36}\.png$/);
    }
    expect(options.store.generations.map((g) => g.id)).toEqual(
      result.generations.map((g) => g.generation.id),
    );
    expect(events).toEqual([
      { kind: "queued", position: 1 },
      { kind: "writing-prompt" },
      { kind: "rendering", index: 1, of: 3 },
      { kind: "rendering", index: 2, of: 3 },
      { kind: "rendering", index: 3, of: 3 },
      { kind: "done" },
    ]);
    expect(result.timings.totalMs).toBeGreaterThanOrEqual(
      result.timings.promptMs + result.timings.renderMs,
    );
  });

  it("uploads a non-study image as saved, parameters chunk included", async () => {
    const config = testConfig(dataDir);
    promptArms = new PromptArms(config, {}, silent);
    makePipeline({ config, arms: promptArms, saveImage });
    const result = await pipeline?.imagine({
      subject: "a lighthouse",
      requester: "u1",
      platform: "discord",
      seed: 3,
    });
    const [image] = result?.generations ?? [];
    if (!image) throw new Error("no image");
    expect(image.generation.studyId).toBeUndefined();
    expect(image.png.equals(readFileSync(join(dataDir, image.path)))).toBe(true);
    expect(parseA1111Parameters(readParametersChunk(image.png) as string).prompt).toBe(
      image.generation.prompt,
    );
  });

  it("gives the same prompts and seeds for the same seed, and one image by default", async () => {
    const config = testConfig(dataDir);
    promptArms = new PromptArms(config, {}, silent);
    makePipeline({ config, arms: promptArms });
    const request = { subject: "a red fox", requester: "u1", platform: "cli", seed: 3 };
    const one = await pipeline?.imagine(request);
    const two = await pipeline?.imagine(request);
    expect(one?.generations).toHaveLength(1);
    expect(one?.generations[0]?.generation.prompt).toBe(two?.generations[0]?.generation.prompt);
  });
});

describe("subject checks", () => {
  it("strips mentions and markup before writing the prompt", async () => {
    const generator = new ScriptedGenerator();
    const { store } = makePipeline({ arms: armsOf(generator) });
    const result = await pipeline?.imagine({
      subject: "<@123456> **a red fox** in <#C1|general> <:fox:42> ||snow||",
      requester: "u1",
      platform: "discord",
    });
    expect(generator.requests[0]?.subject).toBe("a red fox in snow");
    expect(result?.subject).toBe("a red fox in snow");
    expect(store.generations[0]?.subject).toBe("a red fox in snow");
  });

  it("refuses a subject that is only mentions and markup, before queuing", async () => {
    const generator = new ScriptedGenerator();
    const { backend } = makePipeline({ arms: armsOf(generator) });
    const { events, onProgress } = recorder();
    const refusal = pipeline?.imagine(
      { subject: "<@123> <!here> ** **", requester: "u1", platform: "slack" },
      onProgress,
    );
    await expect(refusal).rejects.toThrow(UserError);
    await expect(refusal).rejects.toThrow(/empty once mentions/);
    expect(generator.requests).toEqual([]);
    expect(backend.calls).toEqual([]);
    expect(events).toEqual([
      { kind: "failed", reason: expect.stringMatching(/empty/), reference: expect.any(String) },
    ]);
  });

  it("refuses an explicit subject without echoing the word and without writing a prompt", async () => {
    const generator = new ScriptedGenerator();
    const { backend } = makePipeline({ arms: armsOf(generator) });
    const { events, onProgress } = recorder();
    const error = await pipeline
      ?.imagine({ subject: "hentai fox", requester: "u1", platform: "discord" }, onProgress)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("SUBJECT_EXPLICIT");
    expect((error as UserError).message).not.toMatch(/hentai/i);
    expect((error as UserError).message).toMatch(/explicit-content filter/);
    expect(generator.requests).toEqual([]);
    expect(backend.calls).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "failed" });
    expect((events[0] as { reason: string }).reason).not.toMatch(/hentai/i);
  });

  it("refuses an unknown arm with the configured names", async () => {
    const config = testConfig(dataDir);
    promptArms = new PromptArms(config, {}, silent);
    makePipeline({ config, arms: promptArms });
    await expect(
      pipeline?.imagine({ subject: "a fox", requester: "u1", platform: "cli", arm: "nope" }),
    ).rejects.toThrow(/no arm called "nope".*ft-tags/);
  });
});

describe("explicit prompts", () => {
  const EXPLICIT = "a fox, porn";

  it("resamples a blocked prompt with a new derived seed", async () => {
    const generator = new ScriptedGenerator((request, call) =>
      call === 0 ? [EXPLICIT] : [`a fox, watercolour ${request.seed}`],
    );
    const { backend, saved } = makePipeline({ arms: armsOf(generator) });
    const result = await pipeline?.imagine({
      subject: "a fox",
      requester: "u1",
      platform: "cli",
      seed: 11,
    });
    expect(generator.requests.map((r) => [r.count, r.seed])).toEqual([
      [1, 11],
      [1, derivedSeed(11, 0, 1)],
    ]);
    expect(derivedSeed(11, 0, 1)).not.toBe(11);
    expect(result?.generations[0]?.generation.prompt).toBe(
      `a fox, watercolour ${derivedSeed(11, 0, 1)}`,
    );
    expect(backend.calls.map((c) => c.prompt)).toEqual([
      `a fox, watercolour ${derivedSeed(11, 0, 1)}`,
    ]);
    // The image keeps the request's seed; only the prompt was rewritten.
    expect(saved[0]?.parameters.seed).toBe(11);
  });

  it(`refuses after ${PROMPT_RESAMPLES} blocked resamples, with nothing rendered`, async () => {
    const generator = new ScriptedGenerator(() => [EXPLICIT]);
    const { backend, store } = makePipeline({ arms: armsOf(generator) });
    const { events, onProgress } = recorder();
    const error = await pipeline
      ?.imagine({ subject: "a fox", requester: "u1", platform: "cli", seed: 5 }, onProgress)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("PROMPT_EXPLICIT");
    expect((error as UserError).message).not.toMatch(/porn/);
    expect(generator.requests).toHaveLength(1 + PROMPT_RESAMPLES);
    expect(new Set(generator.requests.map((r) => r.seed)).size).toBe(1 + PROMPT_RESAMPLES);
    expect(backend.calls).toEqual([]);
    expect(store.generations).toEqual([]);
    expect(events.at(-1)).toMatchObject({ kind: "failed", reference: expect.any(String) });
  });

  it("refuses only the prompt that stays blocked when several were asked for", async () => {
    const generator = new ScriptedGenerator((_request, call) =>
      call === 0 ? [EXPLICIT, "a fox in snow"] : [EXPLICIT],
    );
    const { backend } = makePipeline({ arms: armsOf(generator) });
    const result = await pipeline?.imagine({
      subject: "a fox",
      requester: "u1",
      platform: "cli",
      count: 2,
      seed: 100,
    });
    expect(result?.refused).toEqual([
      { index: 1, code: "PROMPT_EXPLICIT", reason: expect.stringMatching(/explicit/) },
    ]);
    expect(result?.generations.map((g) => g.generation.prompt)).toEqual(["a fox in snow"]);
    expect(backend.calls.map((c) => c.seed)).toEqual([101]);
  });
});

describe("failures", () => {
  it("reports a backend failure with a reference that is also logged", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: "info",
      destination: new Writable({
        write(chunk, _encoding, callback) {
          lines.push(String(chunk));
          callback();
        },
      }),
    });
    const backend = new FakeBackend("auto", async () => {
      throw new BotError("REMOTE_FAILED", "the server said 500");
    });
    makePipeline({ backend, logger });
    const { events, onProgress } = recorder();
    const error = await pipeline
      ?.imagine({ subject: "a fox", requester: "u1", platform: "cli" }, onProgress)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BotError);
    const failed = events.at(-1) as Extract<ImagineProgress, { kind: "failed" }>;
    expect(failed.kind).toBe("failed");
    expect(failed.reason).toBe("Something went wrong while making the image.");
    expect(failed.reference).toMatch(/^[0-9a-f]{8}$/);
    expect(failureReference(error)).toBe(failed.reference);
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "imagine failed");
    expect(logged).toMatchObject({ reference: failed.reference, level: 50 });
    expect(JSON.stringify(logged)).toMatch(/the server said 500/);
    // Nothing half-made is left behind.
    expect(readdirSync(dataDir)).toEqual([]);
    expect(pipeline?.queue.snapshot().total).toBe(0);
  });

  it("keeps a thrown non-error as the cause of a failure that has its own reference", async () => {
    const backend = new FakeBackend("auto", async () => {
      throw "plain string from a careless library";
    });
    makePipeline({ backend });
    const { events, onProgress } = recorder();
    const error = await pipeline
      ?.imagine({ subject: "a fox", requester: "u1", platform: "cli" }, onProgress)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BotError);
    expect((error as BotError).cause).toBe("plain string from a careless library");
    const failed = events.at(-1) as Extract<ImagineProgress, { kind: "failed" }>;
    expect(failureReference(error)).toBe(failed.reference);
  });

  it("gives every job failed by close its own reference, in the error and the log", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: "info",
      destination: new Writable({
        write(chunk, _encoding, callback) {
          lines.push(String(chunk));
          callback();
        },
      }),
    });
    const backend = new FakeBackend("hang");
    makePipeline({ backend, logger });
    const started = new Promise<void>((resolve) => {
      let renders = 0;
      backend.on("render", () => {
        if (++renders === 2) resolve();
      });
    });
    const jobs = ["u1", "u2", "u3"].map((requester) =>
      pipeline?.imagine({ subject: "a fox", requester, platform: "cli" }).catch((e: unknown) => e),
    );
    await started;
    await pipeline?.close();
    const errors = await Promise.all(jobs);
    const references = errors.map((error) => failureReference(error));
    expect(errors.every((error) => (error as BotError).code === "QUEUE_CLOSED")).toBe(true);
    expect(references.every((ref) => /^[0-9a-f]{8}$/.test(ref ?? ""))).toBe(true);
    expect(new Set(references).size).toBe(3);
    const logged = lines
      .map((line) => JSON.parse(line))
      .filter((line) => line.reference !== undefined && /imagine/.test(line.msg))
      .map((line) => line.reference);
    for (const reference of references) expect(logged).toContain(reference);
  });
});
