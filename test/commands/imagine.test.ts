/** The imagine command's part in blind studies: in a study channel the arm is assigned, not chosen. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CommandContext } from "../../src/commands/command.js";
import { imagineCommand } from "../../src/commands/imagine.js";
import { createLogger } from "../../src/core/logger.js";
import type { ImagineRequest, ImagineResult, Pipeline } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { StudyManager } from "../../src/core/study/manager.js";
import { testConfig } from "../helpers/config.js";

let dataDir: string;
let requests: ImagineRequest[];
let context: CommandContext;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "imagine-command-"));
  requests = [];
  const config = testConfig({ dataDir });
  const logger = createLogger({ level: "silent" });
  // A pipeline double: the command's job is what it asks the pipeline for.
  const pipeline = {
    imagine: async (request: ImagineRequest) => {
      requests.push(request);
      return { generations: [] } as unknown as ImagineResult;
    },
  } as unknown as Pipeline;
  context = {
    config,
    logger,
    arms: new PromptArms(config, {}, logger),
    pipeline,
    studies: new StudyManager({ dataDir }),
    invocation: { platform: "discord", user: "discord:1", channel: "study-room" },
  };
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("imagine in a live study channel", () => {
  it("assigns balanced arms and tags each request with the study", async () => {
    const study = await context.studies?.start({
      name: "arms",
      mode: "live",
      arms: ["base", "ft-tags", "ft-no-tags"],
      channels: ["study-room"],
    });
    for (let i = 0; i < 6; i++) await imagineCommand.execute(context, { subject: "a lighthouse" });
    const counts = new Map<string, number>();
    for (const request of requests)
      counts.set(String(request.arm), (counts.get(String(request.arm)) ?? 0) + 1);
    expect([...counts.values()]).toEqual([2, 2, 2]);
    expect(requests.every((request) => request.studyId === study?.id)).toBe(true);
  });

  it("refuses an arm chosen by the person asking", async () => {
    await context.studies?.start({
      name: "arms",
      mode: "live",
      arms: ["base", "ft-tags"],
      channels: ["study-room"],
    });
    await expect(
      imagineCommand.execute(context, { subject: "a fox", arm: "base" }),
    ).rejects.toThrow(/blind study is running/);
  });

  it("leaves other channels alone", async () => {
    await context.studies?.start({
      name: "arms",
      mode: "live",
      arms: ["base", "ft-tags"],
      channels: ["study-room"],
    });
    context.invocation = { platform: "discord", user: "discord:1", channel: "elsewhere" };
    await imagineCommand.execute(context, { subject: "a fox", arm: "ft-tags" });
    expect(requests[0]).toMatchObject({ arm: "ft-tags" });
    expect(requests[0]?.studyId).toBeUndefined();
  });
});
