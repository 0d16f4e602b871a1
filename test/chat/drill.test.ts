/**
 * The kill -9 drill, for Discord (gateway) and Slack (Socket Mode): `imagine-bot serve`
 * (serve-child.ts, a real child process with the real discord.js or Bolt client and a SQLite
 * vote store) receives a seeded stream of reaction events from the fake platform and is killed
 * with SIGKILL in the middle of it; the stream goes on while it is down; a new serve on the same
 * store then starts. Afterwards the stored votes must equal the reactions visible on the
 * messages: 0 lost, 0 stale, 0 ghost. The figures are printed (votes sent, persisted,
 * reconciled).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { type EmojiScale, votingReactions } from "../../src/adapters/chat/votes.js";
import { seededRandom } from "../../src/core/random.js";
import type { VoteStore } from "../../src/core/types.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { FakeDiscord } from "../fakes/discord.js";
import { FAKE_BOT_USER, type FakeSlack, reactionEvent, startFakeSlack } from "../fakes/slack.js";
import { testConfig } from "../helpers/config.js";
import { nextEvent } from "../pipeline/fakes.js";
import { compareVotes, seedPosted, type VisibleMessage } from "./visible.js";

const MESSAGES = 12;
const USERS = 15;
const EVENTS = 400;
/** SIGKILL right after this many events were dispatched (without waiting for them). */
const KILL_AT = 250;
/** Events dispatched and not yet handled by the child, at most, before the kill. */
const IN_FLIGHT = 8;

/** What the drill needs from a fake platform. */
interface DrillPlatform {
  name: "discord" | "slack";
  scale: EmojiScale;
  env(): NodeJS.ProcessEnv;
  /** Posts a bot message with the bot's 8 voting reactions and records its generation. */
  seed(store: VoteStore, index: number): Promise<string>;
  has(ref: string, user: string, emoji: string): boolean;
  /** A person adds or removes a reaction; a connected bot hears of it. */
  react(ref: string, user: string, emoji: string, added: boolean, eventNumber: number): void;
  visible(refs: readonly string[]): VisibleMessage[];
  connections(): number;
  disconnected(): Promise<void>;
  close(): Promise<void>;
}

async function discordPlatform(): Promise<DrillPlatform> {
  const fake = new FakeDiscord();
  await fake.start();
  const scale = testConfig().votes.discordEmoji;
  const idOf = (ref: string) => ref.split("/")[1] as string;
  return {
    name: "discord",
    scale,
    env: () => ({ DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.apiUrl }),
    async seed(store, index) {
      const message = fake.postMessage();
      const ref = `${fake.channelId}/${message.id}`;
      await seedPosted(store, "discord", ref, index);
      for (const emoji of votingReactions(scale)) {
        fake.setReaction(message.id, emoji, fake.botUser.id, true);
      }
      return ref;
    },
    has: (ref, user, emoji) => fake.reactions.get(idOf(ref))?.get(emoji)?.has(user) ?? false,
    react(ref, user, emoji, added) {
      if (added) fake.reactionAdd({ messageId: idOf(ref), userId: user, emoji });
      else fake.reactionRemove({ messageId: idOf(ref), userId: user, emoji });
    },
    visible: (refs) =>
      refs.map((ref) => ({
        ref,
        reactions: [...(fake.reactions.get(idOf(ref)) ?? new Map<string, Set<string>>())].map(
          ([emoji, users]) => ({ emoji, users: [...users].filter((u) => u !== fake.botUser.id) }),
        ),
      })),
    connections: () => fake.connections,
    disconnected: () =>
      fake.connections === 0
        ? Promise.resolve()
        : nextEvent(fake, "disconnect", () => fake.connections === 0),
    close: () => fake.close(),
  };
}

async function slackPlatform(): Promise<DrillPlatform> {
  const fake: FakeSlack = await startFakeSlack();
  const scale = testConfig().votes.slackEmoji;
  const channel = "C0GENERAL";
  const split = (ref: string) => ref.split(":") as [string, string];
  return {
    name: "slack",
    scale,
    env: () => ({
      SLACK_BOT_TOKEN: fake.botToken,
      SLACK_APP_TOKEN: fake.appToken,
      SLACK_API_URL: fake.apiUrl,
    }),
    async seed(store, index) {
      const ts = `${1_700_000_000 + index}.000100`;
      fake.messages.set(`${channel}:${ts}`, { channel, ts, reactions: [] });
      for (const name of votingReactions(scale)) fake.react(channel, ts, FAKE_BOT_USER, name, true);
      const ref = `${channel}:${ts}`;
      await seedPosted(store, "slack", ref, index);
      return ref;
    },
    has: (ref, user, emoji) =>
      fake.messages
        .get(ref)
        ?.reactions.find((r) => r.name === emoji)
        ?.users.includes(user) ?? false,
    react(ref, user, emoji, added, eventNumber) {
      const [, ts] = split(ref);
      fake.react(channel, ts, user, emoji, added);
      if (fake.connections === 0) return;
      // Not awaited: the acknowledgement is the child's business (and never comes once killed).
      void fake.sendEnvelope(
        "events_api",
        reactionEvent({
          kind: added ? "reaction_added" : "reaction_removed",
          eventId: `EvDrill${eventNumber}`,
          user,
          reaction: emoji,
          channel,
          ts,
        }),
      );
    },
    visible: (refs) =>
      refs.map((ref) => ({
        ref,
        reactions: (fake.messages.get(ref)?.reactions ?? []).map((r) => ({
          emoji: r.name,
          users: r.users.filter((u) => u !== FAKE_BOT_USER),
        })),
      })),
    connections: () => fake.connections,
    disconnected: () =>
      fake.connections === 0
        ? Promise.resolve()
        : nextEvent(fake, "disconnect", () => fake.connections === 0),
    close: () => fake.close(),
  };
}

let dataDir: string;
const children = new Set<ChildProcess>();

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-drill-"));
});
afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
});

function storeUrl(): string {
  return `sqlite://${join(dataDir, "votes.sqlite")}`;
}

interface ChildLine {
  ready?: boolean;
  reconciled?: Record<string, number | string>[];
  reaction?: string;
}

interface ServeChild {
  child: ChildProcess;
  ready: ChildLine;
  /** Reaction events the child has finished handling (recorded or ignored). */
  handled(): number;
  /** Resolves once the child has handled at least `count` reaction events. */
  waitHandled(count: number): Promise<void>;
  exited: Promise<number | null>;
}

/** Starts serve in a child process; resolves once its start reconciliation has finished. */
async function startServeChild(platform: DrillPlatform): Promise<ServeChild> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/chat/serve-child.ts"], {
    env: {
      PATH: process.env.PATH,
      ...platform.env(),
      IMAGINE_DATA_DIR: dataDir,
      IMAGINE_VOTE_STORE: storeUrl(),
      IMAGINE_LOG_LEVEL: "silent",
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  const exited = once(child, "exit").then(([code]) => {
    children.delete(child);
    return code as number | null;
  });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  let handled = 0;
  const progress = new EventEmitter();
  let markReady!: (line: ChildLine) => void;
  const ready = new Promise<ChildLine>((resolve) => {
    markReady = resolve;
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
    const parsed = JSON.parse(text) as ChildLine;
    if (parsed.ready) markReady(parsed);
    if (parsed.reaction) {
      handled += 1;
      progress.emit("handled");
    }
  });
  const failed = exited.then((code) => {
    throw new Error(`serve exited (${code}) before it was ready: ${stderr}`);
  });
  return {
    child,
    ready: await Promise.race([ready, failed]),
    handled: () => handled,
    waitHandled: (count) =>
      handled >= count ? Promise.resolve() : nextEvent(progress, "handled", () => handled >= count),
    exited,
  };
}

async function compareStore(platform: DrillPlatform, refs: readonly string[]) {
  const store = await openVoteStore(storeUrl(), { dataDir });
  try {
    let events = 0;
    for await (const _event of store.events()) events += 1;
    const comparison = await compareVotes(
      store,
      platform.name,
      platform.scale,
      platform.visible(refs),
    );
    return { ...comparison, events };
  } finally {
    await store.close();
  }
}

describe.each([
  ["Discord", discordPlatform, (i: number) => (1_150_000_000_000_000_000n + BigInt(i)).toString()],
  ["Slack", slackPlatform, (i: number) => `U0DRILL${i}`],
] as const)("kill -9 drill (%s, real serve in a child process)", (_label, makePlatform, userId) => {
  it("after SIGKILL mid-stream and a restart, stored votes equal the visible reactions", async () => {
    const platform = await makePlatform();
    try {
      const refs: string[] = [];
      const seeding = await openVoteStore(storeUrl(), { dataDir });
      for (let i = 0; i < MESSAGES; i++) refs.push(await platform.seed(seeding, i));
      await seeding.close();

      const first = await startServeChild(platform);
      expect(first.ready.reconciled?.[0]).toMatchObject({ reconciled: MESSAGES, added: 0 });
      if (platform.connections() === 0) throw new Error("serve is not connected");

      const random = seededRandom(11);
      const pick = <T>(items: readonly T[]): T =>
        items[Math.floor(random.next() * items.length)] as T;
      const users = Array.from({ length: USERS }, (_, i) => userId(i));
      const emoji = votingReactions(platform.scale);
      let handledAtKill = 0;
      for (let n = 0; n < EVENTS; n++) {
        const ref = pick(refs);
        const user = pick(users);
        const reaction = pick(emoji);
        platform.react(ref, user, reaction, !platform.has(ref, user, reaction), n);
        if (n + 1 < KILL_AT) {
          // Keeps up to IN_FLIGHT events unhandled, so that the kill lands mid-stream.
          await first.waitHandled(n + 1 - IN_FLIGHT);
        } else if (n + 1 === KILL_AT) {
          handledAtKill = first.handled();
          first.child.kill("SIGKILL");
          await first.exited;
          await platform.disconnected(); // from here on nobody hears of the reactions
        }
      }
      const atKill = await compareStore(platform, refs);

      const second = await startServeChild(platform);
      const reconciled = second.ready.reconciled?.[0] ?? {};
      second.child.stdin?.write("stop\n");
      expect(await second.exited).toBe(0);
      const final = await compareStore(platform, refs);

      console.info(
        JSON.stringify({
          drill: `${platform.name} kill -9`,
          eventsSent: EVENTS,
          sentWhileServing: KILL_AT,
          handledBeforeKill: handledAtKill,
          atKill: {
            voteEvents: atKill.events,
            votesStored: atKill.stored,
            lost: atKill.lost.length,
            stale: atKill.stale.length,
            ghost: atKill.ghost.length,
          },
          reconciled,
          final: {
            visibleVotes: final.visible,
            votesStored: final.stored,
            lost: final.lost.length,
            stale: final.stale.length,
            ghost: final.ghost.length,
          },
        }),
      );
      // The drill means something only if the kill and the downtime left the store wrong.
      expect(atKill.lost.length + atKill.stale.length + atKill.ghost.length).toBeGreaterThan(0);
      expect(final).toMatchObject({ lost: [], stale: [], ghost: [] });
      expect(final.visible).toBeGreaterThan(0);
    } finally {
      await platform.close();
    }
  });
});
