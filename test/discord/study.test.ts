/**
 * Batch studies posted in a Discord channel (chat/studyPoster.ts): `/study action:start
 * mode:batch` with a tiny plan and no pace starts posting at once; every item is an ordinary bot
 * message (POST /channels/{id}/messages) with the PNG, subject, seed and legend, never the arm
 * or the prompt, followed by the 8 voting reactions; a reaction on one is a vote on the study's
 * generation. Nothing sleeps: waits are on the fake's recorded calls and adapter events.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import { studyPoster } from "../../src/adapters/chat/studyPoster.js";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import {
  type CommandReport,
  type DiscordAdapter,
  type ReactionReport,
  startDiscordAdapter,
} from "../../src/adapters/discord/index.js";
import type { Config } from "../../src/core/config.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type Pipeline } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import { StudyManager } from "../../src/core/study/manager.js";
import type { KeyvVoteStore } from "../../src/core/votes/index.js";
import { ADMIN_PERMISSIONS, FakeDiscord, type RecordedCall } from "../fakes/discord.js";
import { TINY_MODEL_DIR, testConfig } from "../helpers/config.js";
import { allGenerations, memoryVoteStore } from "../helpers/votes.js";
import { FakeBackend, nextEvent } from "../pipeline/fakes.js";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ARMS = ["ft-tags", "baseline"];

let fake: FakeDiscord;
let dataDir: string;
let config: Config;
let arms: PromptArms;
let pipeline: Pipeline;
let store: KeyvVoteStore;
let studies: StudyManager;
let adapter: DiscordAdapter;

beforeAll(async () => {
  fake = new FakeDiscord();
  await fake.start();
  dataDir = mkdtempSync(join(tmpdir(), "imagine-discord-study-"));
  config = testConfig({
    dataDir,
    arms: Object.fromEntries(ARMS.map((arm) => [arm, { kind: "onnx", modelDir: TINY_MODEL_DIR }])),
    image: { width: 64, height: 64, steps: 20, timeoutMs: 1000, retries: 0 },
    queue: { concurrency: 2, perUserCap: 3, globalCap: 100, deadlineMs: 30_000 },
  });
  const logger = createLogger({ level: "silent" });
  arms = new PromptArms(config, {}, logger);
  store = await memoryVoteStore();
  studies = new StudyManager({ dataDir, logger });
  pipeline = createPipeline({
    config,
    arms,
    backend: new FakeBackend(),
    filter: loadExplicitFilter({}),
    store,
    saveImage,
    logger,
  });
  adapter = await startDiscordAdapter(
    { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl },
    { config, logger, arms, pipeline, votes: store, studies, commands: CHAT_COMMANDS },
  );
  // As serve does once its adapters run; no pace, so the items follow one another at once.
  studies.setPoster(studyPoster([adapter], { pipeline, logger }, { intervalMs: 0 }));
});

afterAll(async () => {
  await studies?.close();
  await adapter?.close();
  await pipeline?.close();
  await arms?.close();
  await fake?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Resolves once `done` holds over the fake's recorded calls. */
function untilCalls(done: (calls: readonly RecordedCall[]) => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (done(fake.calls)) return resolve();
    const listener = () => {
      if (!done(fake.calls)) return;
      fake.off("call", listener);
      resolve();
    };
    fake.on("call", listener);
  });
}

const channelPosts = (calls: readonly RecordedCall[]) =>
  calls.filter((c) => c.method === "POST" && c.path === `/channels/${fake.channelId}/messages`);

/** The id the fake gave a posted message, found by its attachment (named after the generation). */
function messageIdOf(call: RecordedCall): string {
  const name = call.files[0]?.name;
  const stored = [...fake.messages.values()].find(
    (m) =>
      m.channel_id === fake.channelId &&
      m.type === 0 &&
      (m.attachments as { filename: string }[])[0]?.filename === name,
  );
  if (!stored) throw new Error("posted message not stored");
  return stored.id;
}

describe("batch study in a Discord channel", () => {
  it("posts every item as a bot message with the PNG and 8 reactions, blind, and counts votes", async () => {
    const { id } = fake.interact({
      name: "study",
      permissions: ADMIN_PERMISSIONS,
      options: [
        { name: "action", type: 3, value: "start" },
        { name: "mode", type: 3, value: "batch" },
        { name: "name", type: 3, value: "pilot" },
        { name: "arms", type: 3, value: ARMS.join(",") },
        { name: "concepts", type: 3, value: "a lighthouse,a teapot" },
        { name: "prompts", type: 4, value: 1 },
        { name: "surveys", type: 4, value: 1 },
        { name: "seed", type: 4, value: 7 },
      ],
    });
    const command = await nextEvent<CommandReport>(adapter.events, "command", (r) => r.id === id);
    expect(command).toMatchObject({ command: "study", outcome: "done" });
    const [study] = await studies.list();
    if (!study?.plan) throw new Error("no batch study recorded");
    expect(study.channels).toEqual([fake.channelId]);
    const total = study.plan.items.length;
    expect(total).toBe(4);

    const emoji = votingReactions(config.votes.discordEmoji);
    const reactionPuts = (calls: readonly RecordedCall[]) =>
      calls.filter(
        (c) => c.method === "PUT" && c.path.includes("/reactions/") && c.path.endsWith("/@me"),
      );
    await untilCalls(
      (calls) =>
        channelPosts(calls).length === total && reactionPuts(calls).length === total * emoji.length,
    );
    await studies.close(); // the run ends after its last item
    expect((await studies.require(study.id)).posted).toHaveLength(total);

    const posts = channelPosts(fake.calls);
    const prompts = (await allGenerations(store)).map((g) => g.prompt);
    expect(prompts).toHaveLength(total);
    const messageIds: string[] = [];
    for (const post of posts) {
      const text = (post.json as { content?: string }).content ?? "";
      // The survey and position, never the seed: matched images of one slot share it.
      expect(text).toMatch(/^\*\*a (lighthouse|teapot)\*\*\nSurvey \d+ · image \d+\nRate: /);
      expect(text).not.toContain("Prompt");
      expect(text).not.toMatch(/seed/i);
      expect(post.files).toHaveLength(1);
      const file = post.files[0];
      expect(file?.name).toMatch(/^imagine-[0-9a-f]{8}\.png$/);
      expect(file?.data.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      const attachments = (post.json as { attachments?: { description?: string }[] }).attachments;
      const alt = attachments?.[0]?.description ?? "";
      expect(alt).toMatch(/^a (lighthouse|teapot)$/);
      for (const visible of [text, file?.name ?? "", alt]) {
        for (const arm of ARMS) expect(visible).not.toContain(arm);
        for (const prompt of prompts) expect(visible).not.toContain(prompt);
      }
      // Its 8 reactions come after it, in order.
      const messageId = messageIdOf(post);
      messageIds.push(messageId);
      const own = reactionPuts(fake.calls).filter((c) =>
        c.path.startsWith(`/channels/${fake.channelId}/messages/${messageId}/reactions/`),
      );
      expect(own.map((c) => decodeURIComponent(c.path.split("/")[6] ?? ""))).toEqual(emoji);
      expect(own.every((c) => c.index > post.index)).toBe(true);
    }
    expect(new Set(messageIds).size).toBe(total);

    // Every generation belongs to the study, with its plan arm and seed, and its message.
    for (const generation of await allGenerations(store)) {
      expect(generation.studyId).toBe(study.id);
      expect(generation.platform).toBe("discord");
      expect(generation.channel).toBe(fake.channelId);
      expect(ARMS).toContain(generation.arm);
    }
    const planned = study.plan.items.map((i) => `${i.concept}/${i.arm}/${i.seed}`).sort();
    const made = (await allGenerations(store)).map((g) => `${g.subject}/${g.arm}/${g.seed}`).sort();
    expect(made).toEqual(planned);

    // A reaction on a study message is a vote on the study's generation.
    const messageId = messageIds[1] as string;
    const generation = await store.findGenerationByMessage(
      "discord",
      `${fake.channelId}/${messageId}`,
    );
    expect(generation?.studyId).toBe(study.id);
    const rater = "1100000000000000077";
    const handled = nextEvent<ReactionReport>(
      adapter.events,
      "reaction",
      (r) => r.user === rater && r.added,
    );
    fake.reactionAdd({ messageId, userId: rater, emoji: "🟢" });
    expect((await handled).outcome).toMatchObject({ kind: "cast" });
    expect(await store.votesOf(generation?.id ?? "")).toMatchObject([
      { rater: `discord:${rater}`, dimension: "faithfulness", score: 4 },
    ]);
  });
});
