/**
 * Discord sharding with the real discord.js client against the fake Discord: two bot processes
 * (two adapters, DISCORD_SHARDS=2 with DISCORD_SHARD_IDS=0 and =1) on one Redis vote store, and
 * one process running both shards. Guilds are split by Discord's rule ((id >> 22) % 2); each
 * shard gets only its guilds and their interactions and reactions; a vote from each guild lands
 * in the store once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  type CommandReport,
  type DiscordAdapter,
  type ReactionReport,
  startDiscordAdapter,
} from "../../src/adapters/discord/index.js";
import { discordMessageRef } from "../../src/adapters/discord/reactions.js";
import { type DiscordShards, discordSettings } from "../../src/adapters/discord/settings.js";
import type { Command, ReportResult } from "../../src/commands/command.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { VoteEvent } from "../../src/core/types.js";
import { type KeyvVoteStore, openVoteStore } from "../../src/core/votes/index.js";
import { FakeDiscord, guildShard } from "../fakes/discord.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import { nextEvent, testConfig } from "../pipeline/fakes.js";
import { sampleGeneration } from "../votes/contract.js";
import { requireService, runId } from "../votes/services.js";

const redisUrl = requireService("IMAGINE_TEST_REDIS_URL", "Redis");
const run = runId();

/** A command that answers at once, to see which process handled an interaction. */
const whoami = {
  name: "whoami",
  description: "Says which shard process answered",
  options: z.object({}),
  async execute() {
    return { kind: "report", text: "here", data: null, files: [] };
  },
} satisfies Command<z.ZodObject, ReportResult>;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** One bot process: an adapter running `shards`, with its own connection to the shared store. */
async function startProcess(fake: FakeDiscord, storeUrl: string, shards: DiscordShards) {
  const dataDir = mkdtempSync(join(tmpdir(), "imagine-shards-"));
  const config = testConfig(dataDir);
  const logger = createLogger({ level: "silent" });
  const arms = new PromptArms(config, {}, logger);
  const votes = await openVoteStore(storeUrl, { dataDir, logger });
  const pipeline = createPipeline({
    config,
    arms,
    backend: {
      name: "unused",
      render: () => Promise.reject(new Error("no renders in this test")),
      close: async () => {},
    },
    filter: loadExplicitFilter({}),
    store: votes,
    saveImage,
    logger,
  });
  const adapter = await startDiscordAdapter(
    { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl, shards },
    { config, logger, arms, pipeline, votes, commands: [whoami] },
  );
  const reactions: ReactionReport[] = [];
  adapter.events.on("reaction", (report: ReactionReport) => reactions.push(report));
  cleanups.push(async () => {
    await adapter.close();
    await pipeline.close();
    await arms.close();
    await votes.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { adapter, votes, reactions };
}

function reactionOn(adapter: DiscordAdapter, messageRef: string): Promise<ReactionReport> {
  return nextEvent<ReactionReport>(adapter.events, "reaction", (r) => r.messageRef === messageRef);
}

async function eventsOf(store: KeyvVoteStore, generationId: string): Promise<VoteEvent[]> {
  const events: VoteEvent[] = [];
  for await (const event of store.events()) {
    if (event.generationId === generationId) events.push(event);
  }
  return events;
}

/** A fake Discord with a guild on each of two shards, and an image posted in each. */
async function twoShardDiscord(store: () => Promise<KeyvVoteStore>) {
  const fake = new FakeDiscord();
  fake.maxConcurrency = 2; // both shards identify at once (discord.js waits 5 s per bucket)
  await fake.start();
  cleanups.push(() => fake.close());
  const guilds = [fake.addGuild({ shard: 0, count: 2 }), fake.addGuild({ shard: 1, count: 2 })];
  const writer = await store();
  const images = [];
  for (const guild of guilds) {
    const message = fake.postMessage(guild.channelId);
    const messageRef = discordMessageRef(guild.channelId, message.id);
    const generation = sampleGeneration({ server: guild.id, channel: guild.channelId, messageRef });
    await writer.saveGeneration(generation);
    images.push({ guild, message, messageRef, generation });
  }
  await writer.close();
  return { fake, guilds, images };
}

describe("DISCORD_SHARDS / DISCORD_SHARD_IDS", () => {
  it("reads auto, a count, and the shards of this process; refuses what cannot work", () => {
    const base = { DISCORD_TOKEN: "t" };
    expect(discordSettings(base).shards).toBeUndefined();
    expect(discordSettings({ ...base, DISCORD_SHARDS: "auto" }).shards).toBe("auto");
    expect(discordSettings({ ...base, DISCORD_SHARDS: "3" }).shards).toEqual({
      count: 3,
      ids: [0, 1, 2],
    });
    expect(
      discordSettings({ ...base, DISCORD_SHARDS: "8", DISCORD_SHARD_IDS: "6, 0-2,1" }).shards,
    ).toEqual({ count: 8, ids: [0, 1, 2, 6] });
    for (const [env, message] of [
      [{ DISCORD_SHARDS: "0" }, /whole number of shards from 1/],
      [{ DISCORD_SHARDS: "two" }, /"auto" or a whole number/],
      [{ DISCORD_SHARD_IDS: "0" }, /needs DISCORD_SHARDS/],
      [{ DISCORD_SHARDS: "auto", DISCORD_SHARD_IDS: "0" }, /not auto/],
      [{ DISCORD_SHARDS: "2", DISCORD_SHARD_IDS: "2" }, /from 0 to 1/],
      [{ DISCORD_SHARDS: "4", DISCORD_SHARD_IDS: "3-1" }, /"0-3"/],
    ] as const) {
      expect(() => discordSettings({ ...base, ...env })).toThrow(message);
    }
  });
});

if (redisUrl) {
  const storeUrl = (space: string) =>
    `${redisUrl}${redisUrl.includes("?") ? "&" : "?"}namespace=${run}-${space}`;

  afterAll(async () => {
    await deleteRedisKeys(redisUrl, run);
  });

  describe("Discord shards on one Redis vote store", () => {
    it("split guilds between two processes: each handles its own interactions and reactions, each vote lands once", async () => {
      const url = storeUrl("two");
      const { fake, guilds, images } = await twoShardDiscord(() =>
        openVoteStore(url, { dataDir: "/nonexistent" }),
      );
      const processes = [
        await startProcess(fake, url, { count: 2, ids: [0] }),
        await startProcess(fake, url, { count: 2, ids: [1] }),
      ];
      expect(fake.connectedShards.map(String).sort()).toEqual(["0,2", "1,2"]);
      expect(fake.identifies.map((identify) => String(identify.shard)).sort()).toEqual([
        "0,2",
        "1,2",
      ]);
      // Each process knows only the guilds of its shard.
      for (const [shard, { adapter }] of processes.entries()) {
        const known = [...adapter.client.guilds.cache.keys()].sort();
        const expected = fake.guilds
          .filter((guild) => guildShard(guild.id, 2) === shard)
          .map((guild) => guild.id)
          .sort();
        expect(known).toEqual(expected);
        expect(known).toContain(guilds[shard]?.id);
      }

      // An interaction in each guild is answered by that guild's shard, once.
      for (const [shard, guild] of guilds.entries()) {
        const process = processes[shard] as (typeof processes)[number];
        const answered = nextEvent<CommandReport>(process.adapter.events, "command");
        const { token } = fake.interact({ name: "whoami", channelId: guild.channelId });
        expect((await answered).outcome).toBe("done");
        await fake.waitForCall(
          (call) => call.path.includes(`/interactions/`) && call.path.includes(token),
        );
        expect(
          fake.calls.filter(
            (call) => call.method === "POST" && call.path.includes(`/${token}/callback`),
          ),
        ).toHaveLength(1);
      }

      // A person votes in each guild; the shard of that guild records it.
      const voter = "1100000000000000042";
      for (const [shard, image] of images.entries()) {
        const process = processes[shard] as (typeof processes)[number];
        const handled = reactionOn(process.adapter, image.messageRef);
        fake.reactionAdd({
          messageId: image.message.id,
          userId: voter,
          emoji: "3️⃣",
          channelId: image.guild.channelId,
        });
        expect((await handled).outcome.kind).toBe("cast");
      }
      // Neither process saw the other guild's reaction (the fake sends a guild's events only
      // to its shard): every report a process made is about its own guild's image.
      for (const [shard, { reactions }] of processes.entries()) {
        expect(reactions.map((r) => r.messageRef)).toEqual([images[shard]?.messageRef]);
      }
      // Both processes read the same votes; each vote is in the log once.
      for (const image of images) {
        for (const { votes } of processes) {
          expect((await votes.votesOf(image.generation.id)).map((v) => v.score)).toEqual([3]);
        }
        const events = await eventsOf(processes[0]?.votes as KeyvVoteStore, image.generation.id);
        expect(events.map((e) => [e.kind, e.rater, e.score])).toEqual([
          ["add", `discord:${voter}`, 3],
        ]);
      }
    });

    it("runs both shards in one process (internal sharding) with every guild", async () => {
      const url = storeUrl("one");
      const { fake, images } = await twoShardDiscord(() =>
        openVoteStore(url, { dataDir: "/nonexistent" }),
      );
      const { adapter, votes } = await startProcess(fake, url, { count: 2, ids: [0, 1] });
      expect(fake.connectedShards.map(String).sort()).toEqual(["0,2", "1,2"]);
      expect([...adapter.client.guilds.cache.keys()].sort()).toEqual(
        fake.guilds.map((guild) => guild.id).sort(),
      );
      for (const image of images) {
        const handled = reactionOn(adapter, image.messageRef);
        fake.reactionAdd({
          messageId: image.message.id,
          userId: "1100000000000000043",
          emoji: "2️⃣",
          channelId: image.guild.channelId,
        });
        expect((await handled).outcome.kind).toBe("cast");
        expect((await votes.votesOf(image.generation.id)).map((v) => v.score)).toEqual([2]);
      }
    });
  });
}
