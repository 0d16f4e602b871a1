/**
 * Signed-request checks beyond Bolt's, and dedupe that survives a restart, with real signed
 * requests against the real Bolt app (HTTP receiver) and the fake Slack:
 *   - a timestamp more than 5 minutes in the future is rejected (Bolt only rejects old ones);
 *   - an exact replay of a signed slash command runs once, also after a restart on the store;
 *   - a reaction event Slack retries after a restart is not applied a second time.
 */
import { afterEach, describe, expect, it } from "vitest";
import { postSigned, reactionEvent, slackSignature, slashCommandBody } from "../fakes/slack.js";
import {
  type Harness,
  nextCommand,
  SIGNING_SECRET,
  sendReaction,
  sendSlash,
  startHarness,
} from "./harness.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const CHANNEL = "C0GENERAL";

function signedSlash(harness: Harness, text: string) {
  const body = slashCommandBody({
    text,
    user: "U0ALICE",
    channel: CHANNEL,
    responseUrl: harness.fake.responseUrl(),
  });
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = slackSignature(SIGNING_SECRET, timestamp, body);
  /** POSTs exactly the same signed request each time. */
  return () =>
    postSigned(harness.url, body, {
      secret: SIGNING_SECRET,
      contentType: "application/x-www-form-urlencoded",
      timestamp,
      signature,
    });
}

describe("Slack signed requests", () => {
  it("rejects a correctly signed request stamped 10 minutes in the future, renders nothing", async () => {
    h = await startHarness();
    const reports: unknown[] = [];
    h.adapter.events.on("command", (r) => reports.push(r));
    h.adapter.events.on("reaction", (r) => reports.push(r));
    const future = Math.floor(Date.now() / 1000) + 10 * 60;

    const slash = await sendSlash(h, "a lighthouse from the future", {}, { timestamp: future });
    expect(slash.status).toBe(401);
    const body = JSON.stringify(
      reactionEvent({
        kind: "reaction_added",
        eventId: "EvFuture",
        user: "U0EVE",
        reaction: "one",
        channel: CHANNEL,
        ts: "1700000000.000001",
      }),
    );
    const reaction = await postSigned(h.url, body, {
      secret: SIGNING_SECRET,
      contentType: "application/json",
      timestamp: future,
      signature: slackSignature(SIGNING_SECRET, future, body),
    });
    expect(reaction.status).toBe(401);

    // 4 minutes ahead is within the window: the same kind of request is accepted (control).
    const done = nextCommand(h.adapter);
    const near = await sendSlash(
      h,
      "a lighthouse seed:3",
      {},
      { timestamp: Math.floor(Date.now() / 1000) + 4 * 60 },
    );
    expect(near.status).toBe(200);
    expect((await done).outcome).toBe("done");
    expect(reports).toHaveLength(1);
    expect(h.backend.calls.map((c) => c.prompt)).not.toContainEqual(
      expect.stringContaining("future"),
    );
    expect(h.backend.calls).toHaveLength(1);
    expect(h.logs.some((l) => l.msg === "request timestamp too far from now: rejected")).toBe(true);
  });

  it("runs an exact replay of a signed slash command once, also after a restart on the same store", async () => {
    h = await startHarness();
    const send = signedSlash(h, "a lighthouse seed:11");
    const done = nextCommand(h.adapter);
    const first = await send();
    expect(first.status).toBe(200);
    const replay = await send();
    expect(replay.status).toBe(200);
    expect(JSON.parse(replay.body)).toMatchObject({
      response_type: "ephemeral",
      text: expect.stringContaining("already received"),
    });
    expect((await done).outcome).toBe("done");

    await h.restart();
    const afterRestart = await send();
    expect(afterRestart.status).toBe(200);
    expect(JSON.parse(afterRestart.body)).toMatchObject({ response_type: "ephemeral" });
    expect(afterRestart.body).toContain("already received");

    expect(h.backend.calls).toHaveLength(1);
    expect(h.fake.uploadPosts).toHaveLength(1);

    // A new command (new trigger, new body) from the same person still runs.
    const another = nextCommand(h.adapter);
    expect((await signedSlash(h, "a lighthouse seed:12")()).status).toBe(200);
    expect((await another).outcome).toBe("done");
    expect(h.fake.uploadPosts).toHaveLength(2);
  });

  it("drops a reaction_removed that Slack retries after a restart", async () => {
    h = await startHarness();
    const done = nextCommand(h.adapter);
    await sendSlash(h, "a lighthouse seed:5");
    const ref = (await done).messages[0]?.ref as string;
    const ts = ref.slice(ref.indexOf(":") + 1);
    const generation = await h.votes.findGenerationByMessage("slack", ref);
    const id = generation?.id as string;

    // Over HTTP the 200 comes once the vote is stored (before, a crash would lose it).
    h.fake.react(CHANNEL, ts, "U0ALICE", "three", true);
    const ack = await postSigned(
      h.url,
      JSON.stringify(
        reactionEvent({
          kind: "reaction_added",
          eventId: "EvAdd1",
          user: "U0ALICE",
          reaction: "three",
          channel: CHANNEL,
          ts,
        }),
      ),
      { secret: SIGNING_SECRET, contentType: "application/json" },
    );
    expect(ack.status).toBe(200);
    expect((await h.votes.votesOf(id)).map((v) => v.score)).toEqual([3]);
    const removed = await sendReaction(h, {
      kind: "reaction_removed",
      eventId: "EvRemove",
      reaction: "three",
      ts,
    });
    expect(removed.report.outcome).toMatchObject({ kind: "retracted" });
    const again = await sendReaction(h, { eventId: "EvAdd2", reaction: "three", ts });
    expect(again.report.outcome).toMatchObject({ kind: "cast" });

    await h.restart();
    // The restart's reconciliation finds the vote matching the visible reaction: no change.
    const reconciled = await h.adapter.flow.reconciliation;
    expect(reconciled?.summary).toMatchObject({ reconciled: 1, added: 0, retracted: 0 });
    const retried = await sendReaction(h, {
      kind: "reaction_removed",
      eventId: "EvRemove",
      reaction: "three",
      ts,
      retryNum: 1,
    });
    expect(retried.status).toBe(200);
    expect(retried.report.outcome).toEqual({ kind: "ignored", reason: "duplicate" });
    expect((await h.votes.votesOf(id)).map((v) => [v.rater, v.dimension, v.score])).toEqual([
      ["slack:U0ALICE", "quality", 3],
    ]);
  });
});
