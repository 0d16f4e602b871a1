/**
 * Reconciliation with the real discord.js client against the fake Discord, whose messages keep
 * their real reaction state: reactions changed while the bot was down (added, removed,
 * replaced, more than one page of users, two in one dimension, a deleted message) are read back
 * on start, and reactions whose events were lost are read back after a gateway resume.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import type { ReconcileReport } from "../../src/adapters/chat/flow.js";
import type { ChatServices } from "../../src/adapters/chat/services.js";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import {
  type DiscordAdapter,
  type ReactionReport,
  startDiscordAdapter,
} from "../../src/adapters/discord/index.js";
import type { Config } from "../../src/core/config.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { KeyvVoteStore } from "../../src/core/votes/index.js";
import { compareVotes, seedPosted, type VisibleMessage } from "../chat/visible.js";
import { FakeDiscord } from "../fakes/discord.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { FakeBackend, nextEvent, testConfig } from "../pipeline/fakes.js";

let fake: FakeDiscord;
let dataDir: string;
let config: Config;
let store: KeyvVoteStore;
let services: ChatServices;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  fake = new FakeDiscord();
  await fake.start();
  dataDir = mkdtempSync(join(tmpdir(), "imagine-discord-reconcile-"));
  config = testConfig(dataDir);
  const logger = createLogger({ level: "silent" });
  const arms = new PromptArms(config, {}, logger);
  store = await memoryVoteStore();
  const pipeline = createPipeline({
    config,
    arms,
    backend: new FakeBackend(),
    filter: loadExplicitFilter({}),
    store,
    saveImage,
    logger,
  });
  services = { config, logger, arms, pipeline, votes: store, commands: CHAT_COMMANDS };
  closers.push(
    () => pipeline.close(),
    () => arms.close(),
  );
});

afterAll(async () => {
  for (const close of closers) await close();
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const A = "1100000000000000011";
const B = "1100000000000000012";
const C = "1100000000000000013";
const D = "1100000000000000014";
const E = "1100000000000000015";

function start(): Promise<DiscordAdapter> {
  return startDiscordAdapter(
    { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl },
    services,
  );
}

/** What the fake shows on a message, the bot's reactions left out. */
function visible(messageId: string): VisibleMessage {
  const reactions = [...(fake.reactions.get(messageId) ?? new Map<string, Set<string>>())].map(
    ([emoji, users]) => ({ emoji, users: [...users].filter((u) => u !== fake.botUser.id) }),
  );
  return { ref: `${fake.channelId}/${messageId}`, reactions };
}

/** A message posted before, with its generation and the bot's 8 voting reactions. */
async function posted(index: number) {
  const message = fake.postMessage();
  const generation = await seedPosted(store, "discord", `${fake.channelId}/${message.id}`, index);
  for (const emoji of votingReactions(config.votes.discordEmoji)) {
    fake.setReaction(message.id, emoji, fake.botUser.id, true);
  }
  return { id: message.id, generation };
}

async function react(adapter: DiscordAdapter, messageId: string, user: string, emoji: string) {
  const handled = nextEvent<ReactionReport>(
    adapter.events,
    "reaction",
    (r) => r.user === user && r.emoji === emoji,
  );
  fake.reactionAdd({ messageId, userId: user, emoji });
  return handled;
}

function disconnected(): Promise<void> {
  if (fake.connections === 0) return Promise.resolve();
  return nextEvent(fake, "disconnect", () => fake.connections === 0);
}

describe("Discord reconciliation", () => {
  it("brings the votes to the reactions changed while the bot was down", async () => {
    const m1 = await posted(1);
    const m2 = await posted(2);
    const m3 = await posted(3);
    const first = await start();
    // Nothing to do yet: the start's reconciliation finds the bot's own reactions only.
    expect((await first.flow.reconciliation)?.summary).toMatchObject({
      reconciled: 3,
      added: 0,
      retracted: 0,
    });
    expect((await react(first, m1.id, A, "1️⃣")).outcome).toMatchObject({ kind: "cast" });
    expect((await react(first, m1.id, B, "🟢")).outcome).toMatchObject({ kind: "cast" });
    expect((await react(first, m2.id, C, "2️⃣")).outcome).toMatchObject({ kind: "cast" });
    expect((await react(first, m3.id, A, "3️⃣")).outcome).toMatchObject({ kind: "cast" });
    await first.close();
    await disconnected();

    // While down (no gateway connection: nobody hears of it).
    fake.reactionRemove({ messageId: m1.id, userId: A, emoji: "1️⃣" });
    fake.reactionAdd({ messageId: m1.id, userId: A, emoji: "3️⃣" }); // replaced
    fake.reactionRemove({ messageId: m1.id, userId: B, emoji: "🟢" }); // removed
    fake.reactionAdd({ messageId: m2.id, userId: D, emoji: "4️⃣" }); // added
    fake.reactionAdd({ messageId: m2.id, userId: E, emoji: "🔴" }); // two in one dimension
    fake.reactionAdd({ messageId: m2.id, userId: E, emoji: "🟡" });
    const crowd = Array.from({ length: 150 }, (_, i) =>
      (1_200_000_000_000_000_100n + BigInt(i)).toString(),
    );
    for (const user of crowd) fake.reactionAdd({ messageId: m2.id, userId: user, emoji: "2️⃣" });
    fake.messages.delete(m3.id); // deleted: its votes stay as they were

    const second = await start();
    const report = (await second.flow.reconciliation) as ReconcileReport;
    expect(report.reason).toBe("shard 0 ready");
    expect(report.summary).toMatchObject({
      messages: 3,
      reconciled: 2,
      gone: 1,
      added: 152,
      replaced: 1,
      retracted: 1,
      failed: [],
    });
    const comparison = await compareVotes(store, "discord", config.votes.discordEmoji, [
      visible(m1.id),
      visible(m2.id),
    ]);
    expect(comparison).toMatchObject({ lost: [], stale: [], ghost: [], visible: 154 });
    expect(comparison.stored).toBe(154);
    // Two reactions in one dimension: the higher score, one vote.
    const e = (await store.votesOf(m2.generation.id)).filter((v) => v.rater === `discord:${E}`);
    expect(e.map((v) => [v.dimension, v.score])).toEqual([["faithfulness", 3]]);
    const events: string[] = [];
    for await (const event of store.events()) {
      if (event.source === "reconcile") events.push(`${event.kind} ${event.rater}`);
    }
    expect(events).toContain(`add discord:${E}`);
    expect(events).toContain(`replace discord:${A}`);
    expect(events).toContain(`retract discord:${B}`);
    expect(await store.votesOf(m3.generation.id)).toMatchObject([{ rater: `discord:${A}` }]);
    // 150 + C's: two pages for 2️⃣, the second after the first page's last user.
    const pages = fake.calls.filter(
      (c) =>
        c.method === "GET" &&
        c.path ===
          `/channels/${fake.channelId}/messages/${m2.id}/reactions/${encodeURIComponent("2️⃣")}`,
    );
    expect(pages.slice(-2).map((c) => c.query)).toEqual([
      { limit: "100" },
      { limit: "100", after: fake.reactionUsers(m2.id, "2️⃣")[99] },
    ]);

    // Reconciling again finds nothing to do.
    const again = await second.flow.reconcile("again");
    expect(again?.summary).toMatchObject({ added: 0, replaced: 0, retracted: 0 });
    await second.close();
    await disconnected();
  });

  it("reads the reactions back after a gateway resume", async () => {
    const m = await posted(10);
    const adapter = await start();
    await adapter.flow.reconciliation;
    expect((await react(adapter, m.id, A, "4️⃣")).outcome).toMatchObject({ kind: "cast" });
    // Events lost in transit: the state changes but the client never hears of it.
    fake.setReaction(m.id, "4️⃣", A, false);
    fake.setReaction(m.id, "🟠", B, true);
    const reports: ReconcileReport[] = [];
    adapter.events.on("reconcile", (r: ReconcileReport) => reports.push(r));
    const resumed = nextEvent<ReconcileReport>(adapter.events, "reconcile", (r) =>
      r.reason.includes("resumed"),
    );
    fake.dropConnections();
    await resumed;
    expect(reports.map((r) => r.reason)).toEqual(["shard 0 resumed"]);
    expect(reports[0]?.summary).toMatchObject({ added: 1, retracted: 1 });
    expect(
      await compareVotes(store, "discord", config.votes.discordEmoji, [visible(m.id)]),
    ).toMatchObject({ lost: [], stale: [], ghost: [], stored: 1 });
    await adapter.close();
    await disconnected();
  });
});
