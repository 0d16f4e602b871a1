/**
 * Reconciliation with the real Bolt app against the fake Slack, whose messages keep their real
 * reaction state: reactions changed while the bot was down are read back (reactions.get) on
 * start, and reactions whose events were lost are read back after a Socket Mode reconnect.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ReconcileReport } from "../../src/adapters/chat/flow.js";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import { compareVotes, seedPosted, type VisibleMessage } from "../chat/visible.js";
import { FAKE_BOT_USER } from "../fakes/slack.js";
import { nextEvent } from "../pipeline/fakes.js";
import { type Harness, sendReaction, startHarness } from "./harness.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const CHANNEL = "C0GENERAL";
let nextTs = 1_690_000_000;

/** A message posted before, with its generation and the bot's 8 voting reactions. */
async function posted(harness: Harness, index: number) {
  const ts = `${++nextTs}.000100`;
  harness.fake.messages.set(`${CHANNEL}:${ts}`, { channel: CHANNEL, ts, reactions: [] });
  for (const name of votingReactions(harness.config.votes.slackEmoji)) {
    harness.fake.react(CHANNEL, ts, FAKE_BOT_USER, name, true);
  }
  const generation = await seedPosted(harness.votes, "slack", `${CHANNEL}:${ts}`, index);
  return { ts, generation };
}

function visible(harness: Harness, ts: string): VisibleMessage {
  const message = harness.fake.messages.get(`${CHANNEL}:${ts}`);
  return {
    ref: `${CHANNEL}:${ts}`,
    reactions: (message?.reactions ?? []).map((r) => ({
      emoji: r.name,
      users: r.users.filter((u) => u !== FAKE_BOT_USER),
    })),
  };
}

describe("Slack reconciliation", () => {
  it("brings the votes to the reactions changed while the bot was down", async () => {
    h = await startHarness();
    const harness = h;
    await harness.adapter.flow.reconciliation;
    const m1 = await posted(harness, 1);
    const m2 = await posted(harness, 2);
    const m3 = await posted(harness, 3);
    let event = 0;
    const live = async (ts: string, user: string, reaction: string) => {
      const { report } = await sendReaction(harness, {
        eventId: `Ev${++event}`,
        ts,
        user,
        reaction,
      });
      expect(report.outcome).toMatchObject({ kind: "cast" });
    };
    await live(m1.ts, "U0ALICE", "one");
    await live(m1.ts, "U0BOB", "large_green_circle");
    await live(m2.ts, "U0CAROL", "two");
    await live(m3.ts, "U0ALICE", "three");

    await harness.restart({
      whileDown: () => {
        const { fake } = harness;
        fake.react(CHANNEL, m1.ts, "U0ALICE", "one", false);
        fake.react(CHANNEL, m1.ts, "U0ALICE", "three", true); // replaced
        fake.react(CHANNEL, m1.ts, "U0BOB", "large_green_circle", false); // removed
        fake.react(CHANNEL, m2.ts, "U0DAVE", "four", true); // added
        fake.react(CHANNEL, m2.ts, "U0ERIN", "red_circle", true); // two in one dimension
        fake.react(CHANNEL, m2.ts, "U0ERIN", "large_yellow_circle::skin-tone-2", true);
        fake.messages.delete(`${CHANNEL}:${m3.ts}`); // deleted: its votes stay
      },
    });
    const report = (await harness.adapter.flow.reconciliation) as ReconcileReport;
    expect(report.reason).toBe("start");
    expect(report.summary).toMatchObject({
      messages: 3,
      reconciled: 2,
      gone: 1,
      added: 2,
      replaced: 1,
      retracted: 1,
      failed: [],
    });
    const comparison = await compareVotes(harness.votes, "slack", harness.config.votes.slackEmoji, [
      visible(harness, m1.ts),
      visible(harness, m2.ts),
    ]);
    expect(comparison).toMatchObject({ lost: [], stale: [], ghost: [], visible: 4, stored: 4 });
    const erin = (await harness.votes.votesOf(m2.generation.id)).filter(
      (v) => v.rater === "slack:U0ERIN",
    );
    expect(erin.map((v) => [v.dimension, v.score])).toEqual([["faithfulness", 3]]);
    expect(await harness.votes.votesOf(m3.generation.id)).toMatchObject([
      { rater: "slack:U0ALICE", score: 3 },
    ]);
    const gets = harness.fake.callsOf("reactions.get");
    expect(gets.every((c) => c.params.full === true || c.params.full === "true")).toBe(true);

    const again = await harness.adapter.flow.reconcile("again");
    expect(again?.summary).toMatchObject({ added: 0, replaced: 0, retracted: 0 });
  });

  it("reads the reactions back after a Socket Mode reconnect", async () => {
    h = await startHarness({ socket: true });
    const harness = h;
    await harness.fake.connected();
    await harness.adapter.flow.reconciliation;
    const m = await posted(harness, 10);
    // Events lost with the connection: the state changes, the app never hears of it.
    harness.fake.react(CHANNEL, m.ts, "U0ALICE", "four", true);
    harness.fake.react(CHANNEL, m.ts, "U0BOB", "large_orange_circle", true);
    const reconnected = nextEvent<ReconcileReport>(harness.adapter.events, "reconcile");
    harness.fake.dropConnections();
    const report = await reconnected;
    expect(report.reason).toBe("socket mode reconnected");
    expect(report.summary).toMatchObject({ added: 2, retracted: 0 });
    expect(
      await compareVotes(harness.votes, "slack", harness.config.votes.slackEmoji, [
        visible(harness, m.ts),
      ]),
    ).toMatchObject({ lost: [], stale: [], ghost: [], stored: 2 });
  });
});
