/**
 * The Discord adapter with the real discord.js client against a fake Discord on 127.0.0.1
 * (test/fakes/discord.ts): login, /imagine end to end with the tiny prompt model and an in-test
 * image backend, refusals, failures with their logged reference, and votes by reaction.
 * Nothing sleeps: every wait is on a recorded call or an adapter event.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import {
  type CommandReport,
  type DiscordAdapter,
  type ReactionReport,
  startDiscordAdapter,
} from "../../src/adapters/discord/index.js";
import type { Command, ReportResult } from "../../src/commands/command.js";
import type { Config } from "../../src/core/config.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type Pipeline, recoveredFailure } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../../src/core/types.js";
import type { KeyvVoteStore } from "../../src/core/votes/index.js";
import { ADMIN_PERMISSIONS, FakeDiscord, type RecordedCall } from "../fakes/discord.js";
import { allGenerations, memoryVoteStore } from "../helpers/votes.js";
import { nextEvent, smallPng, testConfig } from "../pipeline/fakes.js";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Renders a real PNG, or fails when told to. */
class SwitchableBackend implements ImageBackend {
  readonly name = "in-test";
  fail = false;
  readonly calls: ImageRequest[] = [];
  async render(request: ImageRequest): Promise<RenderedImage> {
    this.calls.push(request);
    if (this.fail) throw new Error("backend exploded: HTTP 500 from the render server");
    return {
      png: await smallPng(),
      width: request.width,
      height: request.height,
      model: "fake/sd-2",
      seed: request.seed,
    };
  }
  async close(): Promise<void> {}
}

const adminCommand = {
  name: "secret",
  description: "An admin-only test command",
  options: z.object({}),
  adminOnly: true,
  async execute() {
    return { kind: "report", text: "the secret is 42", data: null, files: [] };
  },
} satisfies Command<z.ZodObject, ReportResult>;

let fake: FakeDiscord;
let dataDir: string;
let config: Config;
let arms: PromptArms;
let pipeline: Pipeline;
let store: KeyvVoteStore;
let backend: SwitchableBackend;
let adapter: DiscordAdapter;
const logLines: string[] = [];

beforeAll(async () => {
  fake = new FakeDiscord();
  await fake.start();
  dataDir = mkdtempSync(join(tmpdir(), "imagine-discord-"));
  config = testConfig(dataDir);
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk, _encoding, callback) {
        logLines.push(String(chunk));
        callback();
      },
    }),
  });
  arms = new PromptArms(config, {}, logger);
  store = await memoryVoteStore();
  backend = new SwitchableBackend();
  pipeline = createPipeline({
    config,
    arms,
    backend,
    filter: loadExplicitFilter({}),
    store,
    saveImage,
    logger,
  });
  adapter = await startDiscordAdapter(
    { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl },
    { config, logger, arms, pipeline, votes: store, commands: [...CHAT_COMMANDS, adminCommand] },
  );
});

afterAll(async () => {
  if (process.env.DEBUG_DISCORD_TEST) console.log(logLines.join(""));
  await adapter?.close();
  await pipeline?.close();
  await arms?.close();
  await fake?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function commandDone(id: string): Promise<CommandReport> {
  return nextEvent<CommandReport>(adapter.events, "command", (r) => r.id === id);
}

function reactionHandled(match: (report: ReactionReport) => boolean): Promise<ReactionReport> {
  return nextEvent<ReactionReport>(adapter.events, "reaction", match);
}

function content(call: RecordedCall): string | undefined {
  return (call.json as { content?: string } | undefined)?.content;
}

describe("login", () => {
  it("identifies with Guilds and GuildMessageReactions only, uncompressed, and becomes ready", async () => {
    expect(fake.identifies).toHaveLength(1);
    expect(fake.identifies[0]).toMatchObject({
      token: fake.token,
      intents: 1 | (1 << 10),
      compress: false,
    });
    expect(fake.gatewayQueries[0]).toMatch(/\?v=10&encoding=json$/);
    expect(fake.calls[0]).toMatchObject({ method: "GET", path: "/gateway/bot" });
    expect(fake.calls[0]?.headers.authorization).toBe(`Bot ${fake.token}`);
    expect(adapter.client.user?.id).toBe(fake.botUser.id);
    expect(adapter.client.guilds.cache.has(fake.guildId)).toBe(true);
  });
});

describe("/imagine", () => {
  let messageId: string;

  it("defers, shows progress, posts the PNG with subject, prompt, seed and legend, then 8 reactions", async () => {
    const { id, token } = fake.interact({
      name: "imagine",
      options: [{ name: "subject", type: 3, value: "a lighthouse" }],
    });
    const report = await commandDone(id);
    expect(report).toMatchObject({ command: "imagine", outcome: "done" });
    expect(report.messages).toHaveLength(1);
    messageId = report.messages[0]?.id as string;

    const calls = fake.interactionCalls(token);
    expect(calls[0]).toMatchObject({
      method: "POST",
      path: `/interactions/${id}/${token}/callback`,
      json: { type: 5 },
    });
    const patches = calls.slice(1);
    expect(
      patches.every(
        (c) => c.method === "PATCH" && decodeURIComponent(c.path).endsWith("/messages/@original"),
      ),
    ).toBe(true);
    expect(patches.slice(0, -1).map(content)).toEqual([
      "Queued (position 1)…",
      "Writing the prompt…",
      "Rendering…",
    ]);

    const final = patches.at(-1) as RecordedCall;
    expect(final.files).toHaveLength(1);
    const file = final.files[0];
    expect(file?.name).toMatch(/^imagine-[0-9a-f]{8}\.png$/);
    expect(file?.data.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect((await sharp(file?.data).metadata()).format).toBe("png");

    const [generation] = await allGenerations(store);
    if (!generation) throw new Error("no generation stored");
    const text = content(final) ?? "";
    expect(text).toContain("**a lighthouse**");
    expect(text).toContain(`Prompt: `);
    expect(text).toContain(`Seed: ${generation.seed}`);
    expect(text).toContain("Rate: 1️⃣–4️⃣ quality · 🔴🟠🟡🟢 faithfulness");
    expect(text).not.toContain(generation.arm);
    expect(file?.name).not.toContain(generation.arm);
    expect(generation.platform).toBe("discord");
    expect(generation.channel).toBe(fake.channelId);
    expect(generation.messageRef).toBe(`${fake.channelId}/${messageId}`);

    const reactions = fake.calls.filter(
      (c) =>
        c.method === "PUT" &&
        c.path.startsWith(`/channels/${fake.channelId}/messages/${messageId}/reactions/`),
    );
    expect(reactions.map((c) => decodeURIComponent(c.path.split("/")[6] ?? ""))).toEqual(
      votingReactions(config.votes.discordEmoji),
    );
    expect(reactions.every((c) => c.path.endsWith("/@me"))).toBe(true);
  });

  it("refuses an explicit subject with an ephemeral reply and renders nothing", async () => {
    const renders = backend.calls.length;
    const { id, token } = fake.interact({
      name: "imagine",
      options: [{ name: "subject", type: 3, value: "fuck" }],
    });
    expect(await commandDone(id)).toMatchObject({ outcome: "refused" });
    const calls = fake.interactionCalls(token);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.json).toMatchObject({ type: 4, data: { flags: 64 } });
    expect((calls[0]?.json as { data: { content: string } } | undefined)?.data.content).toMatch(
      /explicit-content filter/,
    );
    expect(backend.calls.length).toBe(renders);
  });

  it("reports a backend failure with the reference it was logged under", async () => {
    backend.fail = true;
    try {
      const { id, token } = fake.interact({
        name: "imagine",
        options: [{ name: "subject", type: 3, value: "a red fox" }],
      });
      expect(await commandDone(id)).toMatchObject({ outcome: "failed" });
      const final = fake.interactionCalls(token).at(-1) as RecordedCall;
      expect(final.method).toBe("PATCH");
      expect(final.files).toEqual([]);
      const text = content(final) ?? "";
      const reference = /\(reference ([0-9a-f]{8})\)/.exec(text)?.[1];
      expect(reference).toBeDefined();
      expect(text).not.toContain("HTTP 500");
      const logged = logLines.find(
        (line) => line.includes(`"reference":"${reference}"`) && line.includes("imagine failed"),
      );
      expect(logged).toContain("backend exploded");
    } finally {
      backend.fail = false;
    }
  });

  it("posts a recovered job's failure as a channel message, mentions off", async () => {
    const error = recoveredFailure(new Error("HTTP 500 from the render server"), "0a1b2c3d");
    const posted = await adapter.postFailure(fake.channelId, error);
    const call = fake.calls.at(-1) as RecordedCall;
    expect(call).toMatchObject({ method: "POST", path: `/channels/${fake.channelId}/messages` });
    expect(call.json).toMatchObject({
      content:
        "Sorry, that failed: Something went wrong while making the image. (reference 0a1b2c3d)",
      allowed_mentions: { parse: [] },
    });
    expect(posted?.channel).toBe(fake.channelId);
  });

  it("dispatches other commands from their declarations (prompt) and validates options", async () => {
    const { id, token } = fake.interact({
      name: "prompt",
      options: [
        { name: "subject", type: 3, value: "a castle" },
        { name: "count", type: 4, value: 2 },
        { name: "seed", type: 4, value: 5 },
        { name: "max_new_tokens", type: 4, value: 6 },
      ],
    });
    expect(await commandDone(id)).toMatchObject({ command: "prompt", outcome: "done" });
    const last = fake.interactionCalls(token).at(-1) as RecordedCall;
    const text =
      last.method === "POST"
        ? (last.json as { data: { content: string } }).data.content
        : content(last);
    expect(text).toMatch(/^Prompts for "a castle" \(seed 5\):\n1\. a castle.*\n2\. a castle/);
  });

  it("checks Manage Server for admin commands at run time", async () => {
    const denied = fake.interact({ name: "secret" });
    expect(await commandDone(denied.id)).toMatchObject({ outcome: "refused" });
    expect(fake.interactionCalls(denied.token)[0]?.json).toMatchObject({
      type: 4,
      data: { flags: 64, content: "Only people who can manage this server can use /secret." },
    });
    const allowed = fake.interact({ name: "secret", permissions: ADMIN_PERMISSIONS });
    expect(await commandDone(allowed.id)).toMatchObject({ outcome: "done" });
    const calls = fake.interactionCalls(allowed.token);
    expect(calls.map((c) => c.method)).toEqual(["POST", "PATCH"]);
    expect(content(calls[1] as RecordedCall)).toBe("```\nthe secret is 42\n```");
  });

  describe("votes by reaction", () => {
    const rater = "1100000000000000042";

    it("casts, replaces (removing the old reaction without retracting) and retracts", async () => {
      const generation = await store.findGenerationByMessage(
        "discord",
        `${fake.channelId}/${messageId}`,
      );
      if (!generation) throw new Error("the /imagine test posts the message first");

      let handled = reactionHandled((r) => r.user === rater && r.emoji === "3️⃣" && r.added);
      fake.reactionAdd({ messageId, userId: rater, emoji: "3️⃣" });
      expect((await handled).outcome).toMatchObject({
        kind: "cast",
        event: { kind: "add", score: 3 },
      });
      expect(await store.votesOf(generation.id)).toMatchObject([
        { rater: `discord:${rater}`, dimension: "quality", score: 3 },
      ]);

      // 4 replaces 3; the bot removes the 3, whose removal event must not retract the 4.
      handled = reactionHandled((r) => r.user === rater && r.emoji === "4️⃣" && r.added);
      const cleanup = reactionHandled((r) => r.user === rater && r.emoji === "3️⃣" && !r.added);
      fake.reactionAdd({ messageId, userId: rater, emoji: "4️⃣" });
      const replaced = await handled;
      expect(replaced.outcome).toMatchObject({
        kind: "cast",
        event: { kind: "replace", score: 4, previous: 3 },
        replacedReaction: "3️⃣",
      });
      expect(replaced.oldReactionRemoved).toBe(true);
      expect(
        fake.calls.some(
          (c) =>
            c.method === "DELETE" &&
            c.path ===
              `/channels/${fake.channelId}/messages/${messageId}/reactions/${encodeURIComponent("3️⃣")}/${rater}`,
        ),
      ).toBe(true);
      expect((await cleanup).outcome).toMatchObject({ kind: "unchanged" });
      expect(await store.votesOf(generation.id)).toMatchObject([
        { dimension: "quality", score: 4 },
      ]);

      // A faithfulness vote is separate.
      handled = reactionHandled((r) => r.user === rater && r.emoji === "🟢");
      fake.reactionAdd({ messageId, userId: rater, emoji: "🟢" });
      expect((await handled).outcome).toMatchObject({
        kind: "cast",
        event: { dimension: "faithfulness", score: 4 },
      });

      handled = reactionHandled((r) => r.user === rater && r.emoji === "4️⃣" && !r.added);
      fake.reactionRemove({ messageId, userId: rater, emoji: "4️⃣" });
      expect((await handled).outcome).toMatchObject({
        kind: "retracted",
        event: { kind: "retract", score: 4 },
      });
      expect(await store.votesOf(generation.id)).toMatchObject([
        { dimension: "faithfulness", score: 4 },
      ]);
    });

    it("keeps the vote when the bot may not remove the old reaction (403)", async () => {
      const generation = await store.findGenerationByMessage(
        "discord",
        `${fake.channelId}/${messageId}`,
      );
      if (!generation) throw new Error("no generation");
      const other = "1100000000000000043";
      fake.forbidReactionRemoval = true;
      try {
        let handled = reactionHandled((r) => r.user === other && r.emoji === "🔴");
        fake.reactionAdd({ messageId, userId: other, emoji: "🔴" });
        await handled;
        handled = reactionHandled((r) => r.user === other && r.emoji === "🟡");
        fake.reactionAdd({ messageId, userId: other, emoji: "🟡" });
        const report = await handled;
        expect(report.outcome).toMatchObject({
          kind: "cast",
          event: { kind: "replace", score: 3, previous: 1 },
        });
        expect(report.oldReactionRemoved).toBe(false);
        const votes = await store.votesOf(generation.id);
        expect(votes.find((v) => v.rater === `discord:${other}`)).toMatchObject({
          dimension: "faithfulness",
          score: 3,
        });
        expect(
          logLines.some((l) => l.includes("could not remove a replaced vote's reaction")),
        ).toBe(true);
      } finally {
        fake.forbidReactionRemoval = false;
      }
    });

    it("ignores the bot's own reactions, other bots, other messages and other emoji", async () => {
      const generation = await store.findGenerationByMessage(
        "discord",
        `${fake.channelId}/${messageId}`,
      );
      if (!generation) throw new Error("no generation");
      const before = (await store.votesOf(generation.id)).length;

      let handled = reactionHandled((r) => r.user === fake.botUser.id && r.emoji === "2️⃣");
      fake.reactionAdd({ messageId, userId: fake.botUser.id, emoji: "2️⃣" });
      expect((await handled).outcome).toEqual({ kind: "ignored", reason: "self" });

      const otherBot = fake.user("1100000000000000077", { bot: true });
      handled = reactionHandled((r) => r.user === otherBot.id);
      fake.reactionAdd({ messageId, userId: otherBot.id, emoji: "2️⃣" });
      expect((await handled).outcome).toEqual({ kind: "ignored", reason: "bot" });

      handled = reactionHandled((r) => r.messageRef?.endsWith("/1299999999999999999") === true);
      fake.reactionAdd({ messageId: "1299999999999999999", userId: rater, emoji: "2️⃣" });
      expect((await handled).outcome).toEqual({ kind: "ignored", reason: "not-a-generation" });

      handled = reactionHandled((r) => r.emoji === "😀");
      fake.reactionAdd({ messageId, userId: rater, emoji: "😀" });
      expect((await handled).outcome).toEqual({ kind: "ignored", reason: "not-a-vote" });

      handled = reactionHandled((r) => r.emoji === "party");
      fake.reactionAdd({ messageId, userId: rater, emoji: { id: "1234567890123", name: "party" } });
      expect((await handled).outcome).toEqual({ kind: "ignored", reason: "custom-emoji" });

      expect((await store.votesOf(generation.id)).length).toBe(before);
    });

    it("counts a reaction on a message from before a restart (uncached message, partial user)", async () => {
      // A generation posted by an earlier run: this client has never seen its message.
      const earlier = (await allGenerations(store))[0];
      if (!earlier) throw new Error("no generation");
      const oldMessage = "1250000000000000001";
      await store.saveGeneration({
        ...earlier,
        id: "old-generation",
        messageRef: `${fake.channelId}/${oldMessage}`,
      });
      expect(adapter.client.channels.cache.get(fake.channelId)?.isTextBased()).toBe(true);
      const stranger = fake.user("1100000000000000099");
      expect(adapter.client.users.cache.has(stranger.id)).toBe(false);

      const handled = reactionHandled((r) => r.messageRef?.endsWith(`/${oldMessage}`) === true);
      fake.reactionAdd({
        messageId: oldMessage,
        userId: stranger.id,
        emoji: "1️⃣",
        withMember: false,
      });
      expect((await handled).outcome).toMatchObject({
        kind: "cast",
        event: { kind: "add", score: 1 },
      });
      expect(fake.calls.some((c) => c.method === "GET" && c.path === `/users/${stranger.id}`)).toBe(
        true,
      );
      expect(await store.votesOf("old-generation")).toMatchObject([
        { rater: `discord:${stranger.id}`, dimension: "quality", score: 1 },
      ]);
    });
  });
});
