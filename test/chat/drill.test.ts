/**
 * The kill -9 drill: `imagine-bot serve` (serve-child.ts, a real child process with the real
 * discord.js client and a SQLite vote store) receives a seeded stream of reaction events from
 * the fake Discord and is killed with SIGKILL in the middle of it; the stream goes on while it
 * is down; a new serve on the same store then starts. Afterwards the stored votes must equal
 * the reactions visible on the messages: 0 lost, 0 stale, 0 ghost.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import { seededRandom } from "../../src/core/random.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { FakeDiscord } from "../fakes/discord.js";
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
const SCALE = testConfig().votes.discordEmoji;
const EMOJI = votingReactions(SCALE);

let fake: FakeDiscord;
let dataDir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  fake = new FakeDiscord();
  await fake.start();
  dataDir = mkdtempSync(join(tmpdir(), "imagine-drill-"));
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
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
async function startServeChild(): Promise<ServeChild> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/chat/serve-child.ts"], {
    env: {
      PATH: process.env.PATH,
      DISCORD_TOKEN: fake.token,
      DISCORD_API_URL: fake.apiUrl,
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

function disconnected(): Promise<void> {
  if (fake.connections === 0) return Promise.resolve();
  return nextEvent(fake, "disconnect", () => fake.connections === 0);
}

function visibleMessages(ids: readonly string[]): VisibleMessage[] {
  return ids.map((id) => ({
    ref: `${fake.channelId}/${id}`,
    reactions: [...(fake.reactions.get(id) ?? new Map<string, Set<string>>())].map(
      ([emoji, users]) => ({ emoji, users: [...users].filter((u) => u !== fake.botUser.id) }),
    ),
  }));
}

async function compareStore(ids: readonly string[]) {
  const store = await openVoteStore(storeUrl(), { dataDir });
  try {
    let events = 0;
    for await (const _event of store.events()) events += 1;
    return { ...(await compareVotes(store, "discord", SCALE, visibleMessages(ids))), events };
  } finally {
    await store.close();
  }
}

describe("kill -9 drill (Discord, real serve in a child process)", () => {
  it("after SIGKILL mid-stream and a restart, stored votes equal the visible reactions", async () => {
    const ids: string[] = [];
    const seeding = await openVoteStore(storeUrl(), { dataDir });
    for (let i = 0; i < MESSAGES; i++) {
      const message = fake.postMessage();
      ids.push(message.id);
      await seedPosted(seeding, "discord", `${fake.channelId}/${message.id}`, i);
      for (const emoji of EMOJI) fake.setReaction(message.id, emoji, fake.botUser.id, true);
    }
    await seeding.close();

    const first = await startServeChild();
    expect(first.ready.reconciled?.[0]).toMatchObject({ reconciled: MESSAGES, added: 0 });

    const random = seededRandom(11);
    const pick = <T>(items: readonly T[]): T =>
      items[Math.floor(random.next() * items.length)] as T;
    const users = Array.from({ length: USERS }, (_, i) =>
      (1_150_000_000_000_000_000n + BigInt(i)).toString(),
    );
    let handledAtKill = 0;
    for (let n = 0; n < EVENTS; n++) {
      const messageId = pick(ids);
      const userId = pick(users);
      const emoji = pick(EMOJI);
      const has = fake.reactions.get(messageId)?.get(emoji)?.has(userId) ?? false;
      if (has) fake.reactionRemove({ messageId, userId, emoji });
      else fake.reactionAdd({ messageId, userId, emoji });
      if (n + 1 < KILL_AT) {
        // Keeps up to IN_FLIGHT events unhandled, so that the kill lands mid-stream.
        await first.waitHandled(n + 1 - IN_FLIGHT);
      } else if (n + 1 === KILL_AT) {
        handledAtKill = first.handled();
        first.child.kill("SIGKILL");
        await first.exited;
        await disconnected(); // from here on nobody hears of the reactions
      }
    }
    const afterKill = await compareStore(ids);

    const second = await startServeChild();
    const reconciled = second.ready.reconciled?.[0] ?? {};
    second.child.stdin?.write("stop\n");
    expect(await second.exited).toBe(0);
    const final = await compareStore(ids);

    console.info(
      JSON.stringify({
        drill: "discord kill -9",
        eventsSent: EVENTS,
        sentWhileServing: KILL_AT,
        handledBeforeKill: handledAtKill,
        atKill: {
          voteEvents: afterKill.events,
          votesStored: afterKill.stored,
          lost: afterKill.lost.length,
          stale: afterKill.stale.length,
          ghost: afterKill.ghost.length,
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
    expect(afterKill.lost.length + afterKill.stale.length + afterKill.ghost.length).toBeGreaterThan(
      0,
    );
    expect(final).toMatchObject({ lost: [], stale: [], ghost: [] });
    expect(final.stored).toBe(final.visible);
    expect(final.visible).toBeGreaterThan(0);
  });
});
