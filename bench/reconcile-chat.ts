/**
 * Reconciliation through the real chat adapters against the fakes: `--messages` (default 1,000)
 * image messages, each with the 8 voting reactions (the bot's) and 8 people's reactions (4
 * raters × quality and faithfulness, seeded), none of them in the vote store yet — as after a
 * long downtime. Timed: the reconciliation the adapter runs on start (reads every message's
 * reactions, writes every vote) and a second pass (reads everything, writes nothing).
 *   Discord: the real discord.js client, one GET …/reactions/{emoji} per voting emoji (8 per
 *            message), queued by discord.js's REST rate-limit buckets (one per channel).
 *   Slack:   the real Bolt app (HTTP receiver), one reactions.get?full=true per message.
 * Printed, not asserted. The fakes answer at once, so this measures the bot's side.
 *
 *   npx tsx bench/reconcile-chat.ts [--messages 1000] [--store memory|sqlite] [--platform both]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CHAT_COMMANDS } from "../src/adapters/chat/commands.js";
import type { ChatFlow, ReconcileReport } from "../src/adapters/chat/flow.js";
import type { ChatServices } from "../src/adapters/chat/services.js";
import { votingReactions } from "../src/adapters/chat/votes.js";
import { startDiscordAdapter } from "../src/adapters/discord/index.js";
import { startSlackAdapter } from "../src/adapters/slack/index.js";
import { saveImage } from "../src/core/image/store.js";
import { createLogger } from "../src/core/logger.js";
import { createPipeline } from "../src/core/pipeline.js";
import { PromptArms } from "../src/core/prompt/arms.js";
import { seededRandom } from "../src/core/random.js";
import { loadExplicitFilter } from "../src/core/safety/index.js";
import { openVoteStore } from "../src/core/votes/store.js";
import { compareVotes, seedPosted, type VisibleMessage } from "../test/chat/visible.js";
import { FakeDiscord } from "../test/fakes/discord.js";
import { FAKE_BOT_USER, startFakeSlack } from "../test/fakes/slack.js";
import { testConfig } from "../test/helpers/config.js";
import { PngBackend } from "../test/slack/harness.js";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "1000" },
    store: { type: "string", default: "memory" },
    platform: { type: "string", default: "both" },
  },
});
const MESSAGES = Number(values.messages);
if (!Number.isInteger(MESSAGES) || MESSAGES < 1) throw new Error("--messages: a whole number ≥ 1");
if (values.store !== "memory" && values.store !== "sqlite")
  throw new Error("--store: memory|sqlite");
if (!["both", "discord", "slack"].includes(values.platform as string)) {
  throw new Error("--platform: both|discord|slack");
}
const RATERS = 4;

async function services(dataDir: string) {
  const config = testConfig({ dataDir });
  const logger = createLogger({ level: "silent" });
  const arms = new PromptArms(config, {}, logger);
  const votes = await openVoteStore(
    values.store === "sqlite" ? "sqlite://votes.sqlite" : "memory://",
    {
      dataDir,
      logger,
    },
  );
  const pipeline = createPipeline({
    config,
    arms,
    backend: new PngBackend(),
    filter: loadExplicitFilter({}),
    store: votes,
    saveImage,
    logger,
  });
  const chat: ChatServices = { config, logger, arms, pipeline, votes, commands: CHAT_COMMANDS };
  return {
    chat,
    votes,
    async close() {
      await pipeline.close();
      await arms.close();
      await votes.close();
    },
  };
}

/** Each rater's quality and faithfulness reaction on message `i`, seeded. */
function raterReactions(i: number, scale: string[]): { user: number; emoji: string }[] {
  const random = seededRandom(1000 + i);
  return Array.from({ length: RATERS }, (_, r) => [
    { user: r, emoji: scale[Math.floor(random.next() * 4)] as string },
    { user: r, emoji: scale[4 + Math.floor(random.next() * 4)] as string },
  ]).flat();
}

async function timed(flow: ChatFlow, first: Promise<ReconcileReport | undefined> | undefined) {
  const start = (await first) as ReconcileReport;
  const second = (await flow.reconcile("second pass")) as ReconcileReport;
  return { start, second };
}

function print(
  platform: string,
  runs: { start: ReconcileReport; second: ReconcileReport },
  check: object,
) {
  const row = (r: ReconcileReport) => {
    const { failed, ...s } = r.summary;
    return { ms: r.ms, perMessageMs: +(r.ms / s.messages).toFixed(2), ...s, failed: failed.length };
  };
  console.log(
    JSON.stringify({
      platform,
      messages: MESSAGES,
      store: values.store,
      start: row(runs.start),
      second: row(runs.second),
      check,
    }),
  );
}

async function discord(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-reconcile-discord-"));
  const fake = new FakeDiscord();
  await fake.start();
  const s = await services(dataDir);
  const scale = votingReactions(s.chat.config.votes.discordEmoji);
  const messages: VisibleMessage[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const message = fake.postMessage();
    const ref = `${fake.channelId}/${message.id}`;
    await seedPosted(s.votes, "discord", ref, i);
    for (const emoji of scale) fake.setReaction(message.id, emoji, fake.botUser.id, true);
    for (const { user, emoji } of raterReactions(i, scale)) {
      fake.setReaction(
        message.id,
        emoji,
        (1_150_000_000_000_000_000n + BigInt(user)).toString(),
        true,
      );
    }
    messages.push({ ref, reactions: [] });
  }
  const adapter = await startDiscordAdapter(
    { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl },
    s.chat,
  );
  const runs = await timed(adapter.flow, adapter.flow.reconciliation);
  const visible = messages.map((m) => {
    const id = m.ref.split("/")[1] as string;
    return {
      ref: m.ref,
      reactions: scale.map((emoji) => ({
        emoji,
        users: fake.reactionUsers(id, emoji).filter((u) => u !== fake.botUser.id),
      })),
    };
  });
  const check = await compareVotes(s.votes, "discord", s.chat.config.votes.discordEmoji, visible);
  print("discord", runs, {
    stored: check.stored,
    lost: check.lost.length,
    stale: check.stale.length,
    ghost: check.ghost.length,
  });
  await adapter.close();
  await s.close();
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
}

async function slack(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-reconcile-slack-"));
  const fake = await startFakeSlack();
  const s = await services(dataDir);
  const scale = votingReactions(s.chat.config.votes.slackEmoji);
  const channel = "C0GENERAL";
  const visible: VisibleMessage[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const ts = `${1_700_000_000 + i}.000100`;
    fake.messages.set(`${channel}:${ts}`, { channel, ts, reactions: [] });
    for (const name of scale) fake.react(channel, ts, FAKE_BOT_USER, name, true);
    const people = raterReactions(i, scale);
    for (const { user, emoji } of people) fake.react(channel, ts, `U0RATER${user}`, emoji, true);
    await seedPosted(s.votes, "slack", `${channel}:${ts}`, i);
    visible.push({
      ref: `${channel}:${ts}`,
      reactions: people.map(({ user, emoji }) => ({ emoji, users: [`U0RATER${user}`] })),
    });
  }
  const adapter = await startSlackAdapter(
    { botToken: fake.botToken, port: 0, apiUrl: fake.apiUrl, signingSecret: "bench-secret" },
    s.chat,
    { listen: { port: 0, host: "127.0.0.1" } },
  );
  const runs = await timed(adapter.flow, adapter.flow.reconciliation);
  const check = await compareVotes(s.votes, "slack", s.chat.config.votes.slackEmoji, visible);
  print("slack", runs, {
    stored: check.stored,
    lost: check.lost.length,
    stale: check.stale.length,
    ghost: check.ghost.length,
  });
  await adapter.close();
  await s.close();
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
}

if (values.platform !== "slack") await discord();
if (values.platform !== "discord") await slack();
