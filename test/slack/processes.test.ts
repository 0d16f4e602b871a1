/**
 * Two Slack bot processes behind one HTTP endpoint: two real Bolt HTTP receivers, one fake Slack
 * Web API, one vote store on real Redis (two connections, as two processes have). Slack's retry
 * of an event (x-slack-retry-num) may reach the other process; the event must count once.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { RecentIds } from "../../src/adapters/chat/dedupe.js";
import type { VoteEvent } from "../../src/core/types.js";
import { postSigned, reactionEvent } from "../fakes/slack.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import { requireService, runId } from "../votes/services.js";
import {
  type Harness,
  nextCommand,
  reactionReport,
  SIGNING_SECRET,
  sendSlash,
  startHarness,
} from "./harness.js";

const redisUrl = requireService("IMAGINE_TEST_REDIS_URL", "Redis");
const run = runId();
let harnesses: Harness[] = [];

afterEach(async () => {
  // The second process first: it shares the first one's fake Slack.
  for (const harness of harnesses.reverse()) await harness.close();
  harnesses = [];
});

/** Two processes of one Slack app on one store; the first posts an image to react on. */
async function twoProcesses(space: string, options: { sharedDedupe: boolean }) {
  const storeUrl = `${redisUrl}${redisUrl?.includes("?") ? "&" : "?"}namespace=${run}-${space}`;
  // Each process its own memory of ids, when not shared through the store.
  const adapterOptions = () => (options.sharedDedupe ? {} : { seen: new RecentIds(100) });
  const first = await startHarness({ storeUrl, adapterOptions: adapterOptions() });
  harnesses.push(first);
  const second = await startHarness({
    storeUrl,
    fake: first.fake,
    adapterOptions: adapterOptions(),
  });
  harnesses.push(second);
  const done = nextCommand(first.adapter);
  expect((await sendSlash(first, "a lighthouse seed:7")).status).toBe(200);
  const report = await done;
  expect(report.outcome).toBe("done");
  const ref = report.messages[0]?.ref as string;
  const generation = await second.votes.findGenerationByMessage("slack", ref);
  if (!generation) throw new Error("the second process does not see the posted image");
  return { first, second, ts: ref.slice(ref.indexOf(":") + 1), generation };
}

function signedReaction(fields: {
  eventId: string;
  reaction: string;
  ts: string;
  eventTs?: string;
}) {
  return JSON.stringify(
    reactionEvent({
      kind: "reaction_added",
      user: "U0ALICE",
      channel: "C0GENERAL",
      ...fields,
    }),
  );
}

function post(harness: Harness, body: string, retryNum?: number) {
  return postSigned(harness.url, body, {
    secret: SIGNING_SECRET,
    contentType: "application/json",
    ...(retryNum !== undefined ? { retryNum } : {}),
  });
}

async function eventsOf(harness: Harness, generationId: string): Promise<VoteEvent[]> {
  const events: VoteEvent[] = [];
  for await (const event of harness.votes.events()) {
    if (event.generationId === generationId) events.push(event);
  }
  return events;
}

if (redisUrl) {
  afterAll(async () => {
    await deleteRedisKeys(redisUrl, run);
  });

  describe("two Slack processes behind one endpoint, one Redis vote store", () => {
    it("handle an event delivered to both at once (the delivery and Slack's retry) once", async () => {
      const { first, second, ts, generation } = await twoProcesses("dedupe", {
        sharedDedupe: true,
      });
      first.fake.react("C0GENERAL", ts, "U0ALICE", "three", true);
      const body = signedReaction({ eventId: "EvBoth", reaction: "three", ts });
      const reports = [
        reactionReport(first.adapter, "EvBoth"),
        reactionReport(second.adapter, "EvBoth"),
      ];
      const answers = await Promise.all([post(first, body), post(second, body, 1)]);
      expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
      const outcomes = (await Promise.all(reports)).map((report) => report.outcome.kind);
      expect(outcomes.sort()).toEqual(["cast", "ignored"]);
      for (const harness of [first, second]) {
        expect((await harness.votes.votesOf(generation.id)).map((v) => v.score)).toEqual([3]);
      }
      expect((await eventsOf(first, generation.id)).map((e) => e.eventId)).toEqual(["EvBoth"]);
    });

    it("count an event once by its id in the store even when each process only remembers its own ids", async () => {
      const { first, second, ts, generation } = await twoProcesses("store-ids", {
        sharedDedupe: false,
      });
      first.fake.react("C0GENERAL", ts, "U0ALICE", "two", true);
      const body = signedReaction({ eventId: "EvTwice", reaction: "two", ts });
      const reports = [
        reactionReport(first.adapter, "EvTwice"),
        reactionReport(second.adapter, "EvTwice"),
      ];
      await Promise.all([post(first, body), post(second, body, 1)]);
      // Both processes handle it; the store applies and logs it once.
      expect((await Promise.all(reports)).map((report) => report.outcome.kind)).toEqual([
        "cast",
        "cast",
      ]);
      expect((await second.votes.votesOf(generation.id)).map((v) => v.score)).toEqual([2]);
      const events = await eventsOf(second, generation.id);
      expect(events.map((e) => [e.kind, e.eventId])).toEqual([["add", "EvTwice"]]);
    });

    it("keep the newer reaction when an older one reaches the other process later (by event_ts)", async () => {
      const { first, second, ts, generation } = await twoProcesses("order", {
        sharedDedupe: true,
      });
      const seconds = Math.floor(Date.now() / 1000);
      const newer = signedReaction({
        eventId: "EvNewer",
        reaction: "four",
        ts,
        eventTs: `${seconds}.200100`,
      });
      const older = signedReaction({
        eventId: "EvOlder",
        reaction: "one",
        ts,
        eventTs: `${seconds}.100200`,
      });
      const newerHandled = reactionReport(second.adapter, "EvNewer");
      await post(second, newer);
      expect((await newerHandled).outcome.kind).toBe("cast");
      const olderHandled = reactionReport(first.adapter, "EvOlder");
      await post(first, older);
      expect((await olderHandled).outcome.kind).toBe("cast");
      for (const harness of [first, second]) {
        const votes = await harness.votes.votesOf(generation.id);
        expect(votes.map((v) => [v.score, v.at])).toEqual([
          [4, new Date(seconds * 1000 + 200).toISOString()],
        ]);
      }
      // The log is in event order and replays to 4.
      expect((await eventsOf(first, generation.id)).map((e) => e.eventId)).toEqual([
        "EvOlder",
        "EvNewer",
      ]);
    });
  });
}
