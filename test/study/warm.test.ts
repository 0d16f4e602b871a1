/**
 * Arm warm-up: every arm of a study is loaded and has run one tiny generation before the study's
 * first image, whichever way the study came to be open here (started here, open when serve
 * starts, started by another process), so that no arm's first image is visibly slower. Info logs
 * never name an arm.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../src/core/logger.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { type ArmWarmer, StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import type { Logger } from "../../src/core/types.js";
import { TINY_MODEL_DIR, testConfig } from "../helpers/config.js";
import { must } from "./fixtures.js";

const ARMS = ["base", "ft-no-tags", "ft-tags"];
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "imagine-warm-"));
  dirs.push(dir);
  return dir;
};

/** A logger at debug level whose lines the test reads back. */
function capturingLogger(): { logger: Logger; lines: () => { level: number; line: string }[] } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      raw.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return {
    logger: createLogger({ level: "debug", destination }),
    lines: () =>
      raw.map((line) => ({ level: (JSON.parse(line) as { level: number }).level, line })),
  };
}
const INFO = 30;

/** Records each warm-up with what the study files held at that moment; can be made to fail. */
class RecordingWarmer implements ArmWarmer {
  readonly calls: { arms: string[]; studiesOnDisk: number }[] = [];
  failWith: Error | undefined;
  constructor(private readonly dataDir: string) {}
  async warm(arms: readonly string[]): Promise<void> {
    let studiesOnDisk = 0;
    try {
      studiesOnDisk = readdirSync(join(this.dataDir, "studies")).filter((f) =>
        f.endsWith(".json"),
      ).length;
    } catch {
      // no studies folder yet
    }
    this.calls.push({ arms: [...arms], studiesOnDisk });
    if (this.failWith) throw this.failWith;
  }
}

describe("PromptArms.warm", () => {
  let arms: PromptArms | undefined;
  afterEach(async () => {
    await arms?.close();
    arms = undefined;
  });

  it("loads each arm and runs one one-token generation, once; info logs name no arm", async () => {
    const { logger, lines } = capturingLogger();
    const config = testConfig({
      arms: {
        base: { kind: "onnx", modelDir: TINY_MODEL_DIR },
        "ft-tags": { kind: "onnx", modelDir: TINY_MODEL_DIR, sampling: { temperature: 0 } },
      },
      defaultArm: "base",
    });
    arms = new PromptArms(config, {}, logger);
    const base = await arms.get("base");
    const generate = vi.spyOn(base, "generate");

    const first = await arms.warm(["base", "ft-tags", "base"]);
    expect(first.map((w) => w.arm)).toEqual(["base", "ft-tags"]);
    expect(generate).toHaveBeenCalledTimes(1);
    expect(generate.mock.calls[0]?.[0]).toMatchObject({ count: 1, maxNewTokens: 1 });
    // Warm now: the same generators, no second warm-up generation.
    expect(await arms.warm(["ft-tags", "base"])).toEqual([
      { arm: "ft-tags", ms: 0 },
      { arm: "base", ms: 0 },
    ]);
    expect(generate).toHaveBeenCalledTimes(1);
    expect(await arms.get("base")).toBe(base);

    const info = lines().filter((l) => l.level >= INFO);
    expect(info.some((l) => l.line.includes("prompt arms warmed"))).toBe(true);
    for (const { line } of info) expect(line).not.toMatch(/"base"|ft-tags|tiny-caption/);
    // The names are there for whoever debugs.
    expect(lines().some((l) => l.level < INFO && l.line.includes("ft-tags"))).toBe(true);
  });

  it("refuses an unknown arm before loading anything", async () => {
    arms = new PromptArms(testConfig(), {}, createLogger({ level: "silent" }));
    const load = vi.spyOn(arms, "get");
    await expect(arms.warm(["ft-tags", "nope"])).rejects.toMatchObject({
      code: "ARM_UNKNOWN",
      message: expect.stringMatching(/no arm called "nope"/),
    });
    expect(load).not.toHaveBeenCalled();
  });
});

describe("StudyManager warms a study's arms", () => {
  it("before the study is written when it starts; a failing arm refuses the study", async () => {
    const dataDir = tempDir();
    const warmer = new RecordingWarmer(dataDir);
    const manager = new StudyManager({ dataDir, warmer });
    const record = await manager.start({ mode: "live", name: "w", arms: ARMS, channels: ["c"] });
    expect(warmer.calls).toEqual([{ arms: ARMS, studiesOnDisk: 0 }]);
    // Assignments in this process need no second warm-up.
    expect((await manager.assignArm("c"))?.studyId).toBe(record.id);
    expect(warmer.calls).toHaveLength(1);

    // A study refused for its channel costs no warm-up.
    await expect(
      manager.start({ mode: "live", name: "y", arms: ARMS, channels: ["c"] }),
    ).rejects.toThrow(/already in running study/);
    expect(warmer.calls).toHaveLength(1);

    warmer.failWith = new Error("model files missing");
    await expect(
      manager.start({ mode: "live", name: "x", arms: ARMS, channels: ["d"] }),
    ).rejects.toThrow(/model files missing/);
    expect((await manager.list()).map((s) => s.id)).toEqual([record.id]);
  });

  it("for a study another process started, once, before the first assignment returns", async () => {
    const dataDir = tempDir();
    const record = await new StudyManager({ dataDir }).start({
      mode: "live",
      name: "cli",
      arms: ARMS,
      channels: ["c"],
    });
    const warmer = new RecordingWarmer(dataDir);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const warm = vi.spyOn(warmer, "warm").mockImplementation(async (arms) => {
      warmer.calls.push({ arms: [...arms], studiesOnDisk: 1 });
      await gate;
    });
    const bot = new StudyManager({ dataDir, warmer });
    let settled = 0;
    const assignments = Array.from({ length: 5 }, () =>
      bot.assignArm("c").then((a) => {
        settled += 1;
        return a;
      }),
    );
    await vi.waitFor(() => expect(warm).toHaveBeenCalledTimes(1));
    expect(settled).toBe(0);
    release();
    const done = await Promise.all(assignments);
    expect(done.map((a) => must(a).studyId)).toEqual(Array(5).fill(record.id));
    expect(warm).toHaveBeenCalledTimes(1);
    expect(warmer.calls[0]?.arms).toEqual(ARMS);
  });

  it("warmOpenStudies warms every running study and reports one that fails", async () => {
    const dataDir = tempDir();
    const plain = new StudyManager({ dataDir });
    const live = await plain.start({ mode: "live", name: "a", arms: ARMS, channels: ["c"] });
    const closed = await plain.start({ mode: "live", name: "b", arms: ARMS, channels: ["d"] });
    await plain.stop(closed.id);
    const plan = makeStudyPlan({
      concepts: ["a fox"],
      promptsPerConcept: 1,
      arms: ["base", "other"],
      surveys: 1,
      seed: 1,
    });
    const batch = await plain.start({ mode: "batch", name: "c", arms: plan.arms, plan });

    const warmer: ArmWarmer = {
      warm: vi.fn(async (arms: readonly string[]) => {
        if (arms.includes("other")) throw new Error("cannot load other");
      }),
    };
    const { logger, lines } = capturingLogger();
    const bot = new StudyManager({ dataDir, warmer, logger });
    const result = await bot.warmOpenStudies();
    expect(result.warmed).toEqual([live.id]);
    expect(result.failed.map((f) => f.studyId)).toEqual([batch.id]);
    expect(warmer.warm).toHaveBeenCalledTimes(2);
    for (const { line } of lines().filter((l) => l.level >= INFO)) {
      expect(line).not.toMatch(/ft-no-tags|ft-tags|"base"/);
    }
    // Without a warmer there is nothing to do.
    expect(await plain.warmOpenStudies()).toEqual({ warmed: [], failed: [] });
  });

  it("before a batch study's first post; a failed warm-up posts nothing", async () => {
    const dataDir = tempDir();
    const plan = makeStudyPlan({
      concepts: ["a fox", "a boat"],
      promptsPerConcept: 1,
      arms: ["base", "ft-tags"],
      surveys: 1,
      seed: 2,
    });
    const record = await new StudyManager({ dataDir }).start({
      mode: "batch",
      name: "batch",
      arms: plan.arms,
      plan,
    });
    const order: string[] = [];
    const failing = new StudyManager({
      dataDir,
      warmer: { warm: async () => Promise.reject(new Error("no model")) },
    });
    const post = async (item: { id: string }) => {
      order.push(`post ${item.id}`);
    };
    await expect(failing.runBatch(record.id, { post, intervalMs: 0 })).rejects.toThrow(/no model/);
    expect(order).toEqual([]);

    const bot = new StudyManager({
      dataDir,
      warmer: {
        warm: async (arms) => {
          order.push(`warm ${arms.length}`);
        },
      },
    });
    const result = await bot.runBatch(record.id, { post, intervalMs: 0, sleep: async () => {} });
    expect(result).toMatchObject({ posted: 4 });
    expect(order[0]).toBe("warm 2");
    expect(order.slice(1)).toHaveLength(4);
  });
});
