/**
 * One VoteStore contract suite, run against every backend (memory, SQLite, Redis, PostgreSQL),
 * like keyv's packages/test-suite and hono's common router cases.
 *
 * `open(space)` opens the store for a storage space of its own: the same space reaches the same
 * data again after close (when the backend is persistent), a new space starts empty.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import type { Generation, Vote, VoteEvent, VoteStore } from "../../src/core/types.js";
import {
  applyConflict,
  conflictingChanges,
  expectedScore,
  replayScore,
  shuffled,
} from "./conflicts.js";

export interface ContractOptions {
  /** Data survives close and reopen of the same space. */
  persistent: boolean;
}

export function sampleGeneration(overrides: Partial<Generation> = {}): Generation {
  return {
    id: randomUUID(),
    createdAt: "2025-01-01T00:00:00.000Z",
    platform: "discord",
    server: "guild-1",
    channel: "channel-1",
    requester: "discord:42",
    subject: "a lighthouse",
    arm: "ft-tags",
    prompt: "a lighthouse on a cliff at sunset, oil painting",
    promptComplete: true,
    seed: 7,
    image: {
      backend: "automatic1111",
      model: "stabilityai/stable-diffusion-2",
      width: 768,
      height: 768,
      steps: 30,
      guidance: 7.5,
      path: "images/x.png",
    },
    timings: { queuedMs: 1, promptMs: 2, renderMs: 3, totalMs: 6 },
    ...overrides,
  };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const byRaterDimension = (a: Vote, b: Vote) =>
  a.rater === b.rater ? a.dimension.localeCompare(b.dimension) : a.rater.localeCompare(b.rater);

export function voteStoreContract(
  name: string,
  open: (space: string) => Promise<VoteStore>,
  options: ContractOptions,
): void {
  describe(`VoteStore contract: ${name}`, () => {
    const opened: VoteStore[] = [];
    const fresh = async (space: string = randomUUID().slice(0, 8)) => {
      const store = await open(space);
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    it("stores generations and finds them by id and by posted message", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      expect(await store.getGeneration(generation.id)).toEqual(generation);
      expect(await store.getGeneration("missing")).toBeUndefined();
      expect(await store.findGenerationByMessage("discord", "m-1")).toBeUndefined();

      await store.setMessageRef(generation.id, "m-1");
      expect(await store.findGenerationByMessage("discord", "m-1")).toEqual({
        ...generation,
        messageRef: "m-1",
      });
      expect((await store.getGeneration(generation.id))?.messageRef).toBe("m-1");
      // Another platform's message with the same reference is not this one.
      expect(await store.findGenerationByMessage("slack", "m-1")).toBeUndefined();

      const posted = sampleGeneration({ platform: "slack", messageRef: "C1/1700000000.0001" });
      await store.saveGeneration(posted);
      expect((await store.findGenerationByMessage("slack", "C1/1700000000.0001"))?.id).toBe(
        posted.id,
      );
      await expect(store.setMessageRef("missing", "m-2")).rejects.toThrow(/no generation/);
    });

    it("adds, replaces and retracts a vote, with one event each", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const vote = {
        generationId: generation.id,
        rater: "discord:1",
        dimension: "quality" as const,
      };

      const added = await store.castVote({ ...vote, score: 3 });
      expect(added).toMatchObject({ kind: "add", ...vote, score: 3 });
      expect(added.previous).toBeUndefined();
      expect(await store.votesOf(generation.id)).toEqual([{ ...vote, score: 3, at: added.at }]);

      const replaced = await store.castVote({ ...vote, score: 4 });
      expect(replaced).toMatchObject({ kind: "replace", ...vote, score: 4, previous: 3 });
      expect(await store.votesOf(generation.id)).toEqual([{ ...vote, score: 4, at: replaced.at }]);

      // The bot removing the OLD reaction after a replace must not retract the new vote.
      expect(await store.retractVote({ ...vote, score: 3 })).toBeUndefined();
      expect((await store.votesOf(generation.id)).map((v) => v.score)).toEqual([4]);

      const retracted = await store.retractVote({ ...vote, score: 4 });
      expect(retracted).toMatchObject({ kind: "retract", ...vote, score: 4 });
      expect(await store.votesOf(generation.id)).toEqual([]);
      expect(await store.retractVote({ ...vote, score: 4 })).toBeUndefined();

      const events = await collect(store.events());
      expect(events.map((e) => [e.kind, e.score, e.previous])).toEqual([
        ["add", 3, undefined],
        ["replace", 4, 3],
        ["retract", 4, undefined],
      ]);
      expect(events).toEqual([added, replaced, retracted]);
    });

    it("keeps one vote per rater and dimension, dimensions independent", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const id = generation.id;
      await store.castVote({ generationId: id, rater: "a", dimension: "quality", score: 2 });
      await store.castVote({ generationId: id, rater: "a", dimension: "faithfulness", score: 1 });
      await store.castVote({ generationId: id, rater: "b", dimension: "quality", score: 4 });
      await store.castVote({ generationId: id, rater: "a", dimension: "quality", score: 3 });
      const votes = (await store.votesOf(id)).sort(byRaterDimension);
      expect(votes.map((v) => [v.rater, v.dimension, v.score])).toEqual([
        ["a", "faithfulness", 1],
        ["a", "quality", 3],
        ["b", "quality", 4],
      ]);
    });

    it("records 50 raters voting on one generation at once: 50 votes, 50 add events", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const raters = Array.from({ length: 50 }, (_, i) => `discord:${1000 + i}`);
      const results = await Promise.all(
        raters.map((rater, i) =>
          store.castVote({
            generationId: generation.id,
            rater,
            dimension: "quality",
            score: (i % 4) + 1,
          }),
        ),
      );
      expect(results.every((event) => event.kind === "add")).toBe(true);
      const votes = await store.votesOf(generation.id);
      expect(votes).toHaveLength(50);
      expect(new Set(votes.map((v) => v.rater))).toEqual(new Set(raters));
      for (const vote of votes) {
        expect(vote.score).toBe((raters.indexOf(vote.rater) % 4) + 1);
      }
      const events = await collect(store.events());
      expect(events).toHaveLength(50);
      expect(new Set(events.map((e) => e.rater))).toEqual(new Set(raters));
    });

    it("serializes one rater's simultaneous reactions: the log replays to the final state", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const vote = {
        generationId: generation.id,
        rater: "slack:U1",
        dimension: "quality" as const,
      };
      // Reaction 2 then 4 added at once, then the bot removes 2 while someone removes 4.
      await Promise.all([
        store.castVote({ ...vote, score: 2 }),
        store.castVote({ ...vote, score: 4 }),
        store.retractVote({ ...vote, score: 2 }),
      ]);
      const events = await collect(store.events());
      expect(events.map((e) => e.kind)).toEqual(["add", "replace"]);
      expect(replay(events)).toEqual(
        new Map((await store.votesOf(generation.id)).map((v) => [key(v), v.score])),
      );
      expect((await store.votesOf(generation.id)).map((v) => v.score)).toEqual([4]);
    });

    it("keeps the newer vote when an older change arrives late (by event time, then event id)", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const vote = {
        generationId: generation.id,
        rater: "slack:U9",
        dimension: "quality" as const,
      };
      const newer = await store.castVote({
        ...vote,
        score: 4,
        at: "2026-03-01T12:00:02.000Z",
        eventId: "Ev2",
      });
      const older = await store.castVote({
        ...vote,
        score: 3,
        at: "2026-03-01T12:00:01.000Z",
        eventId: "Ev1",
      });
      expect(older).toMatchObject({ kind: "add", score: 3, eventId: "Ev1" });
      expect(await store.votesOf(generation.id)).toEqual([
        { ...vote, score: 4, at: "2026-03-01T12:00:02.000Z" },
      ]);
      // The log is in event order, so it replays to the stored vote.
      expect((await collect(store.events())).map((e) => [e.eventId, e.score])).toEqual([
        ["Ev1", 3],
        ["Ev2", 4],
      ]);
      // A retract from before the newer cast removes nothing now; a redelivery changes nothing.
      expect(
        await store.retractVote({
          ...vote,
          score: 4,
          at: "2026-03-01T12:00:00.000Z",
          eventId: "Ev0",
        }),
      ).toBeUndefined();
      expect(
        await store.castVote({ ...vote, score: 4, at: newer.at, eventId: "Ev2" }),
      ).toMatchObject({ score: 4, at: newer.at, eventId: "Ev2" });
      expect((await store.votesOf(generation.id)).map((v) => v.score)).toEqual([4]);
      expect(await collect(store.events())).toHaveLength(2);
      // Same time: the event id decides.
      await store.castVote({ ...vote, score: 1, at: newer.at, eventId: "Ev3" });
      await store.castVote({ ...vote, score: 2, at: newer.at, eventId: "Ev10" });
      expect((await store.votesOf(generation.id)).map((v) => v.score)).toEqual([1]);
    });

    it("rejects a vote time or event id it cannot order by", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const vote = {
        generationId: generation.id,
        rater: "r",
        dimension: "quality" as const,
        score: 2,
      };
      await expect(store.castVote({ ...vote, at: "yesterday" })).rejects.toThrow(/ISO 8601/);
      await expect(store.castVote({ ...vote, at: "2026-02-30T00:00:00.000Z" })).rejects.toThrow(
        /ISO 8601/,
      );
      await expect(store.castVote({ ...vote, eventId: "" })).rejects.toThrow(/event id/);
      expect(await collect(store.events())).toEqual([]);
    });

    it("resolves one rater's conflicting changes in any arrival order to the latest, each logged once", async () => {
      for (const seed of [1, 2, 3, 4, 5, 6]) {
        const changes = conflictingChanges(seed);
        const expected = expectedScore(changes, "discord");
        const outcomes = [];
        for (const order of [0, 1, 2]) {
          const store = await fresh();
          const generation = sampleGeneration();
          await store.saveGeneration(generation);
          const target = {
            generationId: generation.id,
            rater: "discord:7",
            dimension: "quality" as const,
            source: "discord",
          };
          const random = seededRandom(seed * 10 + order);
          // Every change arrives twice (a redelivery), in a shuffled order.
          for (const change of shuffled([...changes, ...changes], random)) {
            await applyConflict(store, change, target);
          }
          const votes = await store.votesOf(generation.id);
          const events = await collect(store.events());
          const ids = events.map((event) => event.eventId);
          expect(new Set(ids).size, `seed ${seed}: an event logged twice`).toBe(ids.length);
          for (const change of changes.filter((c) => c.op === "cast")) {
            expect(ids.filter((id) => id === change.eventId)).toHaveLength(1);
          }
          expect(replayScore(events), `seed ${seed}: the log replays to the vote`).toBe(
            votes[0]?.score,
          );
          outcomes.push(votes.map((v) => [v.score, v.at]));
        }
        expect(outcomes[0]?.[0]?.[0], `seed ${seed}`).toBe(expected);
        expect(outcomes[1]).toEqual(outcomes[0]);
        expect(outcomes[2]).toEqual(outcomes[0]);
      }
    });

    it("records an answer's dimensions together: each change logged once, a resent answer once", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const rater = "web:ada";
      const answer = { generationId: generation.id, rater, source: "web" };

      const added = await store.castAnswer({ ...answer, scores: { quality: 3, faithfulness: 2 } });
      expect(added.map((e) => [e.kind, e.dimension, e.score])).toEqual([
        ["add", "quality", 3],
        ["add", "faithfulness", 2],
      ]);
      expect(added[0]?.at).toBe(added[1]?.at);
      expect(added.every((e) => e.source === "web" && e.rater === rater)).toBe(true);
      // The same form sent again (a double click, a retry) changes nothing and logs nothing.
      expect(
        await store.castAnswer({ ...answer, scores: { quality: 3, faithfulness: 2 } }),
      ).toEqual([]);
      const changed = await store.castAnswer({
        ...answer,
        scores: { quality: 3, faithfulness: 4 },
      });
      expect(changed).toMatchObject([
        { kind: "replace", dimension: "faithfulness", score: 4, previous: 2 },
      ]);
      // Answers and chat votes share one vote per rater and dimension.
      await store.castVote({ generationId: generation.id, rater, dimension: "quality", score: 1 });
      expect(
        await store.castAnswer({ ...answer, scores: { quality: 1, faithfulness: 4 } }),
      ).toEqual([]);
      await store.retractVote({
        generationId: generation.id,
        rater,
        dimension: "faithfulness",
        score: 4,
      });
      expect(await store.castAnswer({ ...answer, scores: { faithfulness: 4 } })).toMatchObject([
        { kind: "add", dimension: "faithfulness", score: 4 },
      ]);

      const votes = (await store.votesOf(generation.id)).sort(byRaterDimension);
      expect(votes.map((v) => [v.dimension, v.score])).toEqual([
        ["faithfulness", 4],
        ["quality", 1],
      ]);
      const events = await collect(store.events());
      expect(events.map((e) => [e.kind, e.dimension, e.score])).toEqual([
        ["add", "quality", 3],
        ["add", "faithfulness", 2],
        ["replace", "faithfulness", 4],
        ["replace", "quality", 1],
        ["retract", "faithfulness", 4],
        ["add", "faithfulness", 4],
      ]);
    });

    it("applies a redelivered answer with its time and event id once", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const answer = {
        generationId: generation.id,
        rater: "web:bo",
        source: "web",
        at: "2026-01-01T10:00:00.000Z",
        eventId: "answer-1",
        scores: { quality: 2, faithfulness: 2 },
      };
      const first = await store.castAnswer(answer);
      expect(first.map((e) => e.eventId)).toEqual(["answer-1/quality", "answer-1/faithfulness"]);
      // A later answer, then the first one delivered again: it stays where it happened.
      await store.castAnswer({
        ...answer,
        at: "2026-01-01T10:01:00.000Z",
        eventId: "answer-2",
        scores: { quality: 4, faithfulness: 3 },
      });
      expect(await store.castAnswer(answer)).toEqual([]);
      expect(
        (await store.votesOf(generation.id)).sort(byRaterDimension).map((v) => v.score),
      ).toEqual([3, 4]);
      expect(await collect(store.events())).toHaveLength(4);
    });

    it("rejects answers it cannot record", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const answer = { generationId: generation.id, rater: "web:cy" };
      await expect(store.castAnswer({ ...answer, scores: {} })).rejects.toThrow(/at least one/);
      await expect(
        store.castAnswer({ ...answer, scores: { quality: 5, faithfulness: 1 } }),
      ).rejects.toThrow(/score 5/);
      await expect(
        store.castAnswer({ ...answer, scores: { beauty: 2 } as Record<string, number> }),
      ).rejects.toThrow(/dimension "beauty"/);
      await expect(
        store.castAnswer({ ...answer, generationId: "missing", scores: { quality: 2 } }),
      ).rejects.toThrow(/no such generation/);
      await expect(
        store.castAnswer({ ...answer, eventId: "e", scores: { quality: 2 } }),
      ).rejects.toThrow(/needs its time/);
      // Nothing half-written: the valid dimension of a refused answer is not stored either.
      expect(await store.votesOf(generation.id)).toEqual([]);
      expect(await collect(store.events())).toEqual([]);
    });

    it("records 50 raters answering at once, each answer sent twice at once: every vote once", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const random = seededRandom(7);
      const scores = Array.from({ length: 50 }, () => ({
        quality: 1 + Math.floor(random.next() * 4),
        faithfulness: 1 + Math.floor(random.next() * 4),
      }));
      const results = await Promise.all(
        [...scores, ...scores].map((answer, i) =>
          store.castAnswer({
            generationId: generation.id,
            rater: `web:r${i % 50}`,
            scores: answer,
            source: "web",
          }),
        ),
      );
      expect(results.flat()).toHaveLength(100);
      const votes = await store.votesOf(generation.id);
      expect(votes).toHaveLength(100);
      for (const vote of votes) {
        const index = Number(vote.rater.slice("web:r".length));
        expect(vote.score).toBe(scores[index]?.[vote.dimension]);
      }
      const events = await collect(store.events());
      expect(events).toHaveLength(100);
      expect(new Set(events.map((e) => `${e.rater} ${e.dimension}`)).size).toBe(100);
    });

    it("appends events oldest first with their times", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const cast: VoteEvent[] = [];
      for (let i = 0; i < 30; i += 1) {
        const rater = `r${i % 7}`;
        const dimension = i % 2 === 0 ? ("quality" as const) : ("faithfulness" as const);
        cast.push(
          await store.castVote({
            generationId: generation.id,
            rater,
            dimension,
            score: (i % 4) + 1,
          }),
        );
        if (i % 5 === 4) {
          const retracted = await store.retractVote({
            generationId: generation.id,
            rater,
            dimension,
            score: (i % 4) + 1,
          });
          if (retracted) cast.push(retracted);
        }
      }
      const events = await collect(store.events());
      expect(events).toEqual(cast);
      const times = events.map((e) => Date.parse(e.at));
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(replay(events)).toEqual(
        new Map((await store.votesOf(generation.id)).map((v) => [key(v), v.score])),
      );
    });

    it("streams only the study's votes, with the arm", async () => {
      const store = await fresh();
      const first = sampleGeneration({ studyId: "study-1", arm: "base" });
      const second = sampleGeneration({ studyId: "study-1", arm: "ft-tags" });
      const inStudy = [first, second];
      const elsewhere = [sampleGeneration({ studyId: "study-2" }), sampleGeneration()];
      for (const generation of [...inStudy, ...elsewhere]) {
        await store.saveGeneration(generation);
        for (const rater of ["u1", "u2"]) {
          await store.castVote({
            generationId: generation.id,
            rater,
            dimension: "faithfulness",
            score: 2,
          });
        }
      }
      await store.castVote({
        generationId: first.id,
        rater: "u3",
        dimension: "quality",
        score: 1,
      });
      await store.retractVote({
        generationId: second.id,
        rater: "u2",
        dimension: "faithfulness",
        score: 2,
      });
      const votes = await collect(store.studyVotes("study-1"));
      expect(votes).toHaveLength(4);
      for (const vote of votes) {
        const generation = inStudy.find((g) => g.id === vote.generationId);
        expect(generation).toBeDefined();
        expect(vote.arm).toBe(generation?.arm);
      }
      expect(await collect(store.studyVotes("no-such-study"))).toEqual([]);
      expect(await collect(store.studyVotes("study-2"))).toHaveLength(2);
    });

    it("rejects votes it cannot record", async () => {
      const store = await fresh();
      const generation = sampleGeneration();
      await store.saveGeneration(generation);
      const base = { generationId: generation.id, rater: "r", dimension: "quality" as const };
      await expect(store.castVote({ ...base, score: 5 })).rejects.toThrow(/1 to 4/);
      await expect(store.castVote({ ...base, score: 2.5 })).rejects.toThrow(/1 to 4/);
      await expect(
        store.castVote({ ...base, dimension: "beauty" as never, score: 2 }),
      ).rejects.toThrow(/dimension/);
      await expect(store.castVote({ ...base, generationId: "nope", score: 2 })).rejects.toThrow(
        /no such generation/,
      );
      expect(await collect(store.events())).toEqual([]);
    });

    it("keeps ids with separators and unicode apart", async () => {
      const store = await fresh();
      const a = sampleGeneration({ id: "a/b:c%", messageRef: "x/y" });
      const b = sampleGeneration({ id: "a", messageRef: "x" });
      await store.saveGeneration(a);
      await store.saveGeneration(b);
      await store.castVote({ generationId: a.id, rater: "ü/1", dimension: "quality", score: 1 });
      await store.castVote({ generationId: b.id, rater: "ü", dimension: "quality", score: 2 });
      expect((await store.votesOf(a.id)).map((v) => v.rater)).toEqual(["ü/1"]);
      expect((await store.votesOf(b.id)).map((v) => v.rater)).toEqual(["ü"]);
      expect((await store.findGenerationByMessage("discord", "x/y"))?.id).toBe(a.id);
    });

    it("lists posted messages of one platform from a time on, and of given studies", async () => {
      const store = await fresh();
      const at = (day: number) => `2026-03-${String(day).padStart(2, "0")}T12:00:00.000Z`;
      const old = sampleGeneration({ createdAt: at(1), messageRef: "m-old" });
      const recent = sampleGeneration({ createdAt: at(8) });
      const newest = sampleGeneration({ createdAt: at(9), messageRef: "m-new" });
      const unposted = sampleGeneration({ createdAt: at(9) });
      const slack = sampleGeneration({ createdAt: at(9), platform: "slack", messageRef: "C/1.1" });
      const oldStudy = sampleGeneration({ createdAt: at(2), messageRef: "m-s1", studyId: "s1" });
      const recentStudy = sampleGeneration({ createdAt: at(9), messageRef: "m-s2", studyId: "s1" });
      const otherStudy = sampleGeneration({ createdAt: at(2), messageRef: "m-s3", studyId: "s2" });
      for (const g of [old, recent, newest, unposted, slack, oldStudy, recentStudy, otherStudy]) {
        await store.saveGeneration(g);
      }
      await store.setMessageRef(recent.id, "m-recent"); // posted after it was saved
      const refs = async (query: Parameters<VoteStore["postedMessages"]>[0]) =>
        (await collect(store.postedMessages(query))).map((m) => {
          expect(m.platform).toBe(query.platform);
          expect(m.generation.messageRef).toBe(m.messageRef);
          return m.messageRef;
        });

      // Oldest first (day 8, then the two of day 9 in id order).
      const window = await refs({ platform: "discord", since: new Date(at(8)) });
      expect(window[0]).toBe("m-recent");
      expect([...window].sort()).toEqual(["m-new", "m-recent", "m-s2"]);
      // The window and the open studies together, each message once.
      expect(
        (
          await refs({ platform: "discord", since: new Date(at(8)), studyIds: ["s1", "s1"] })
        ).sort(),
      ).toEqual(["m-new", "m-recent", "m-s1", "m-s2"]);
      expect(await refs({ platform: "discord", studyIds: ["s2", "none"] })).toEqual(["m-s3"]);
      expect(await refs({ platform: "discord" })).toEqual([]);
      expect((await refs({ platform: "discord", since: new Date(0) })).sort()).toEqual(
        ["m-new", "m-old", "m-recent", "m-s1", "m-s2", "m-s3"].sort(),
      );
      expect(await refs({ platform: "slack", since: new Date(at(1)) })).toEqual(["C/1.1"]);
      await expect(
        collect(store.postedMessages({ platform: "discord", since: new Date("nope") })),
      ).rejects.toThrow(/since/);
    });

    it("claims a key once until its claim expires", async () => {
      const store = await fresh();
      expect(await store.claimOnce("slack-event:Ev1", 60_000)).toBe(true);
      expect(await store.claimOnce("slack-event:Ev1", 60_000)).toBe(false);
      expect(await store.claimOnce("slack-event:Ev2", 60_000)).toBe(true);
      // Keys are kept apart from each other and from the store's own records.
      expect(await store.claimOnce("slack-event:Ev1/x", 60_000)).toBe(true);
      const generation = sampleGeneration({ id: "gen-1" });
      await store.saveGeneration(generation);
      expect(await store.claimOnce("gen/gen-1", 60_000)).toBe(true);
      expect(await store.getGeneration("gen-1")).toEqual(generation);

      // An expired claim can be claimed again (once).
      expect(await store.claimOnce("short", 40)).toBe(true);
      expect(await store.claimOnce("short", 40)).toBe(false);
      await vi.waitFor(
        async () => {
          expect(await store.claimOnce("short", 60_000)).toBe(true);
        },
        { timeout: 5_000, interval: 20 },
      );
      expect(await store.claimOnce("short", 60_000)).toBe(false);
    });

    it("gives exactly one of 50 simultaneous claims of a key", async () => {
      const store = await fresh();
      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.claimOnce("slack-event:Ev-race", 60_000)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      // Different keys at once all win.
      const many = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.claimOnce(`slack-event:Ev-${i}`, 60_000)),
      );
      expect(many.every(Boolean)).toBe(true);
    });

    it("refuses a claim it cannot make", async () => {
      const store = await fresh();
      await expect(store.claimOnce("", 1000)).rejects.toThrow(/claim key/);
      await expect(store.claimOnce("x".repeat(401), 1000)).rejects.toThrow(/claim key/);
      await expect(store.claimOnce("k", 0)).rejects.toThrow(/time to live/);
      await expect(store.claimOnce("k", 1.5)).rejects.toThrow(/time to live/);
      await expect(store.claimOnce("k", Number.NaN)).rejects.toThrow(/time to live/);
    });

    // Only stores that persist get these cases; the memory store is not meant to survive a close.
    if (options.persistent)
      it("keeps claims across a restart, and two stores on one space (two processes) share them", async () => {
        const space = randomUUID().slice(0, 8);
        const first = await open(space);
        expect(await first.claimOnce("slack-event:Ev-restart", 60_000)).toBe(true);
        await first.close();

        const [a, b] = [await fresh(space), await fresh(space)];
        expect(await a.claimOnce("slack-event:Ev-restart", 60_000)).toBe(false);
        for (let round = 0; round < 5; round++) {
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              (i % 2 ? a : b).claimOnce(`slack-command:${round}`, 60_000),
            ),
          );
          expect(results.filter(Boolean)).toHaveLength(1);
        }
      });

    if (options.persistent)
      it("gives every handle (process) the same latest vote when several apply one rater's changes at once in different orders", async () => {
        for (const seed of [11, 12, 13, 14, 15]) {
          const space = randomUUID().slice(0, 8);
          const handles = await Promise.all([1, 2, 3, 4].map(() => fresh(space)));
          const generation = sampleGeneration();
          await (handles[0] as VoteStore).saveGeneration(generation);
          const changes = conflictingChanges(seed, 40);
          const target = {
            generationId: generation.id,
            rater: "slack:U1",
            dimension: "faithfulness" as const,
            source: "slack",
          };
          // Each handle receives its share of the changes in its own order, all handles at once;
          // then every change is delivered again to another handle (a retry that reached a
          // different process), which must change nothing.
          const random = seededRandom(seed);
          const share = shuffled(changes, random).map((change, i) => ({ change, handle: i % 4 }));
          const deliver = (round: number) =>
            Promise.all(
              handles.map(async (handle, h) => {
                for (const { change } of share.filter((s) => (s.handle + round) % 4 === h)) {
                  await applyConflict(handle, change, target);
                }
              }),
            );
          await deliver(0);
          const first = await (handles[0] as VoteStore).votesOf(generation.id);
          await deliver(1);
          expect(await (handles[0] as VoteStore).votesOf(generation.id)).toEqual(first);
          const expected = expectedScore(changes, "slack");
          for (const handle of handles) {
            expect((await handle.votesOf(generation.id)).map((v) => v.score)).toEqual(
              expected === undefined ? [] : [expected],
            );
            const events = await collect(handle.events());
            const ids = events.map((event) => event.eventId);
            expect(new Set(ids).size, `seed ${seed}: an event logged twice`).toBe(ids.length);
            for (const change of changes.filter((c) => c.op === "cast")) {
              expect(ids.filter((id) => id === change.eventId)).toHaveLength(1);
            }
            expect(replayScore(events)).toBe(expected);
          }
        }
      });

    if (options.persistent)
      it("commits an answer's two dimensions together across handles (processes) racing one rater", async () => {
        const space = randomUUID().slice(0, 8);
        const handles = await Promise.all([1, 2, 3, 4].map(() => fresh(space)));
        const generation = sampleGeneration();
        await (handles[0] as VoteStore).saveGeneration(generation);
        const rater = "web:dee";
        // Eight answers, each delivered to two handles at once; every answer is a distinct pair
        // of scores and the latest (by time) must win on both dimensions together.
        const answers = Array.from({ length: 8 }, (_, i) => ({
          generationId: generation.id,
          rater,
          source: "web",
          at: new Date(Date.UTC(2026, 0, 1, 10, 0, i)).toISOString(),
          eventId: `answer-${i}`,
          scores: { quality: 1 + (i % 4), faithfulness: 4 - ((i >> 1) % 4) },
        }));
        const order = shuffled(
          answers.flatMap((answer, i) => [
            { answer, handle: i % 4 },
            { answer, handle: (i + 1) % 4 },
          ]),
          seededRandom(21),
        );
        const results = await Promise.all(
          order.map(({ answer, handle }) => (handles[handle] as VoteStore).castAnswer(answer)),
        );
        // Each delivery recorded both dimensions or (as a redelivery) neither.
        for (const events of results) expect([0, 2]).toContain(events.length);
        expect(results.filter((events) => events.length === 2)).toHaveLength(8);
        const latest = answers.at(-1)?.scores;
        for (const handle of handles) {
          const votes = await handle.votesOf(generation.id);
          expect(Object.fromEntries(votes.map((v) => [v.dimension, v.score]))).toEqual(latest);
          const events = await collect(handle.events());
          expect(events).toHaveLength(16);
          expect(new Set(events.map((e) => e.eventId)).size).toBe(16);
        }
      });

    if (options.persistent)
      if (options.persistent)
        it("keeps everything across close and reopen", async () => {
          const space = randomUUID().slice(0, 8);
          const first = await open(space);
          const generation = sampleGeneration({ studyId: "s", messageRef: "m" });
          await first.saveGeneration(generation);
          await first.castVote({
            generationId: generation.id,
            rater: "r",
            dimension: "quality",
            score: 2,
          });
          await first.castVote({
            generationId: generation.id,
            rater: "r",
            dimension: "quality",
            score: 3,
          });
          const before = await collect(first.events());
          await first.close();
          await first.close(); // twice is fine

          const second = await fresh(space);
          expect(await second.getGeneration(generation.id)).toEqual(generation);
          expect((await second.findGenerationByMessage("discord", "m"))?.id).toBe(generation.id);
          expect((await second.votesOf(generation.id)).map((v) => v.score)).toEqual([3]);
          expect(await collect(second.events())).toEqual(before);
          expect((await collect(second.studyVotes("s"))).map((v) => v.arm)).toEqual(["ft-tags"]);
          // New events sort after the old ones.
          await second.retractVote({
            generationId: generation.id,
            rater: "r",
            dimension: "quality",
            score: 3,
          });
          expect((await collect(second.events())).map((e) => e.kind)).toEqual([
            "add",
            "replace",
            "retract",
          ]);
        });

    it("starts empty in a new space", async () => {
      const store = await fresh();
      expect(await collect(store.events())).toEqual([]);
      expect(await collect(store.studyVotes("study-1"))).toEqual([]);
    });
  });
}

function key(v: { generationId: string; rater: string; dimension: string }): string {
  return `${v.generationId} ${v.rater} ${v.dimension}`;
}

/** Current scores from replaying the log. */
function replay(events: VoteEvent[]): Map<string, number> {
  const state = new Map<string, number>();
  for (const event of events) {
    if (event.kind === "retract") state.delete(key(event));
    else state.set(key(event), event.score);
  }
  return state;
}
