/**
 * The hostile-subject table through the platform-neutral commands that Discord, Slack and the
 * CLI all call: `imagine` (the real pipeline with a scripted generator and a fake backend) and
 * `prompt`. Both must refuse and clean exactly as the gate does, before any prompt is written;
 * generated prompts pass the explicit filter on both (resample, then refuse). A backend that is
 * busy reaches the person as "try again in about N minutes".
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CommandContext } from "../../src/commands/command.js";
import { imagineCommand } from "../../src/commands/imagine.js";
import { promptCommand } from "../../src/commands/prompt.js";
import type { Config } from "../../src/core/config.js";
import { UserError } from "../../src/core/errors.js";
import { createAutomatic1111Backend } from "../../src/core/image/automatic1111.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type ImagineProgress, type Pipeline } from "../../src/core/pipeline.js";
import type { PromptArms } from "../../src/core/prompt/arms.js";
import { derivedSeed, loadExplicitFilter, PROMPT_RESAMPLES } from "../../src/core/safety/index.js";
import type { GenerateRequest, ImageBackend } from "../../src/core/types.js";
import { FakeAutomatic1111 } from "../fakes/automatic1111.js";
import {
  armsOf,
  FakeBackend,
  inTestSaveImage,
  MemoryGenerationStore,
  ScriptedGenerator,
  testConfig,
} from "../pipeline/fakes.js";
import { HOSTILE_SUBJECTS, outcomeOf } from "./hostile.js";

const silent = createLogger({ level: "silent" });
// One safety configuration object for every test, so explicitFilterFor loads the list once.
const safety = testConfig(tmpdir()).safety;
const filter = loadExplicitFilter(safety);

let dataDir: string;
let config: Config;
let pipeline: Pipeline | undefined;
let closers: (() => Promise<void>)[];

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "imagine-safety-"));
  config = { ...testConfig(dataDir), safety };
  closers = [];
});

afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  for (const close of closers) await close();
  await rm(dataDir, { recursive: true, force: true });
});

/** A command context as the chat adapters build it, on a pipeline made of test doubles. */
function contextFor(
  platform: string,
  generator: ScriptedGenerator,
  backend: ImageBackend = new FakeBackend(),
) {
  const store = new MemoryGenerationStore();
  const events: ImagineProgress[] = [];
  pipeline = createPipeline({
    config,
    arms: armsOf(generator),
    backend,
    filter,
    store,
    saveImage: inTestSaveImage(),
    logger: silent,
  });
  const arms = { ...armsOf(generator), defaultArm: config.defaultArm } as unknown as PromptArms;
  const context: CommandContext = {
    config,
    logger: silent,
    arms,
    pipeline,
    invocation: { platform, user: `${platform}:1`, channel: "general" },
    onProgress: (event) => events.push(event),
  };
  return { context, store, events };
}

async function outcome(run: () => Promise<string>) {
  let value: string | undefined;
  let thrown: unknown;
  await run().then(
    (v) => {
      value = v;
    },
    (e: unknown) => {
      thrown = e;
    },
  );
  return outcomeOf(() => {
    if (thrown !== undefined) throw thrown;
    return value as string;
  });
}

describe.each(["discord", "slack", "cli"])("imagine from %s", (platform) => {
  it.each(HOSTILE_SUBJECTS)("%s: %j", async (_label, subject, expected) => {
    const generator = new ScriptedGenerator();
    const backend = new FakeBackend();
    const { context, store } = contextFor(platform, generator, backend);
    const result = await outcome(async () => {
      const imagined = await imagineCommand.execute(context, { subject });
      return imagined.subject;
    });
    expect(result).toEqual(expected);
    if ("accept" in expected) {
      expect(generator.requests[0]?.subject).toBe(expected.accept);
      expect(store.generations[0]?.subject).toBe(expected.accept);
    } else {
      // Refused before the queue: no prompt written, nothing rendered or stored.
      expect(generator.requests).toEqual([]);
      expect(backend.calls).toEqual([]);
      expect(store.generations).toEqual([]);
    }
  });
});

describe.each(["discord", "slack", "cli"])("prompt from %s", (platform) => {
  it.each(HOSTILE_SUBJECTS)("%s: %j", async (_label, subject, expected) => {
    const generator = new ScriptedGenerator();
    const { context } = contextFor(platform, generator);
    const result = await outcome(async () => {
      const written = await promptCommand.execute(context, { subject, count: 2, seed: 5 });
      expect(written.prompts).toHaveLength(2);
      return written.subject;
    });
    expect(result).toEqual(expected);
    if ("accept" in expected) expect(generator.requests[0]?.subject).toBe(expected.accept);
    else expect(generator.requests).toEqual([]);
  });
});

describe("generated prompts on the prompt command", () => {
  it("refuses the issue's example subject without writing a prompt", async () => {
    const generator = new ScriptedGenerator();
    const { context } = contextFor("cli", generator);
    const error = await promptCommand
      .execute(context, { subject: "f.u.c.k lighthouse" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("SUBJECT_EXPLICIT");
    expect(generator.requests).toEqual([]);
  });

  it("rewrites a blocked prompt with a derived seed, as imagine does", async () => {
    const generator = new ScriptedGenerator((request: GenerateRequest, call) =>
      call === 0
        ? ["a lighthouse, n\u0430ked woman", "a lighthouse, watercolour"]
        : [`a lighthouse, oil painting ${request.seed}`],
    );
    const { context } = contextFor("discord", generator);
    const result = await promptCommand.execute(context, {
      subject: "a lighthouse",
      count: 2,
      seed: 11,
    });
    expect(result.prompts.map((p) => p.text)).toEqual([
      `a lighthouse, oil painting ${derivedSeed(11, 0, 1)}`,
      "a lighthouse, watercolour",
    ]);
    expect(result.refused).toEqual([]);
    expect(generator.requests.map((r) => r.seed)).toEqual([11, derivedSeed(11, 0, 1)]);
  });

  it("refuses a prompt that stays blocked and keeps the others", async () => {
    const generator = new ScriptedGenerator((request, call) =>
      call === 0 ? ["a fox, p0rn", "a fox, in snow"] : [`a fox, t.o.p.l.e.s.s ${request.seed}`],
    );
    const { context } = contextFor("slack", generator);
    const result = await promptCommand.execute(context, { subject: "a fox", count: 2, seed: 3 });
    expect(result.prompts.map((p) => p.text)).toEqual(["a fox, in snow"]);
    expect(result.refused).toEqual([
      { index: 1, code: "PROMPT_EXPLICIT", reason: expect.stringMatching(/explicit-content/) },
    ]);
    expect(generator.requests).toHaveLength(1 + PROMPT_RESAMPLES);
  });

  it("refuses when every prompt stays blocked", async () => {
    const generator = new ScriptedGenerator(() => ["a fox, \uff4e\uff55\uff44\uff45"]);
    const { context } = contextFor("cli", generator);
    const error = await promptCommand
      .execute(context, { subject: "a fox", count: 1, seed: 3 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("PROMPT_EXPLICIT");
    expect((error as UserError).message).toMatch(/no prompt is shown/);
    expect(generator.requests).toHaveLength(1 + PROMPT_RESAMPLES);
  });
});

describe("a busy image server", () => {
  it("tells the person to try again in about N minutes instead of 'something went wrong'", async () => {
    const fake = await new FakeAutomatic1111().start();
    closers.push(() => fake.stop());
    fake.script({ kind: "rateLimited", retryAfter: "600" });
    const backend = createAutomatic1111Backend({
      url: fake.url,
      sampler: "Euler a",
      timeoutMs: 10_000,
      retries: 2,
      sleep: async () => {},
    });
    closers.push(() => backend.close());
    const { context, events, store } = contextFor("discord", new ScriptedGenerator(), backend);
    const error = await imagineCommand
      .execute(context, { subject: "a lighthouse" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("BACKEND_BUSY");
    const busy = "The image server is busy; try again in about 10 minutes.";
    expect((error as UserError).message).toBe(busy);
    expect(events.at(-1)).toEqual({ kind: "failed", reason: busy, reference: expect.any(String) });
    // A Retry-After beyond the longest wait (60 s) is not retried.
    expect(fake.renders).toHaveLength(1);
    expect(store.generations).toEqual([]);
  });
});
