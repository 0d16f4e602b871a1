/**
 * Reconciliation: (stored votes, visible reactions) → the votes and events it must leave, run
 * twice (the second run must change nothing), on the memory and SQLite stores; the many-message
 * driver's bounded concurrency, progress and failures; the posted-message query it is fed from.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Dimension, VoteEvent } from "../../src/core/types.js";
import {
  type KeyvVoteStore,
  openVoteStore,
  RECONCILE_SOURCE,
  reconcileMessage,
  reconcileMessages,
  type VisibleReaction,
} from "../../src/core/votes/index.js";
import { testConfig } from "../helpers/config.js";
import { sampleGeneration } from "./contract.js";

const { discordEmoji: DISCORD, slackEmoji: SLACK } = testConfig().votes;
const Q = (score: number) => DISCORD.quality[score - 1] as string;
const F = (score: number) => DISCORD.faithfulness[score - 1] as string;

type Row = [rater: string, dimension: Dimension, score: number];
type EventRow = [
  kind: VoteEvent["kind"],
  rater: string,
  dimension: Dimension,
  score: number,
  previous?: number,
];

interface Case {
  name: string;
  stored: Row[];
  visible: [emoji: string, raters: string[]][];
  votes: Row[];
  events: EventRow[];
}

const A = "discord:1";
const B = "discord:2";

const CASES: Case[] = [
  { name: "nothing stored, nothing visible", stored: [], visible: [], votes: [], events: [] },
  {
    name: "a reaction added while down is added",
    stored: [],
    visible: [[Q(3), [A]]],
    votes: [[A, "quality", 3]],
    events: [["add", A, "quality", 3]],
  },
  {
    name: "a vote that matches its reaction stays",
    stored: [[A, "quality", 3]],
    visible: [[Q(3), [A]]],
    votes: [[A, "quality", 3]],
    events: [],
  },
  {
    name: "a stale vote is replaced by the visible score",
    stored: [[A, "quality", 3]],
    visible: [[Q(1), [A]]],
    votes: [[A, "quality", 1]],
    events: [["replace", A, "quality", 1, 3]],
  },
  {
    name: "a ghost vote (reaction removed while down) is retracted",
    stored: [[A, "quality", 3]],
    visible: [],
    votes: [],
    events: [["retract", A, "quality", 3]],
  },
  {
    name: "two visible reactions, one the stored vote's: the stored vote stays",
    stored: [[A, "quality", 2]],
    visible: [
      [Q(2), [A]],
      [Q(4), [A]],
    ],
    votes: [[A, "quality", 2]],
    events: [],
  },
  {
    name: "two visible reactions, neither stored: the highest, one vote",
    stored: [[A, "quality", 1]],
    visible: [
      [Q(3), [A]],
      [Q(2), [A]],
    ],
    votes: [[A, "quality", 3]],
    events: [["replace", A, "quality", 3, 1]],
  },
  {
    name: "two visible reactions and nothing stored: the highest is added, once",
    stored: [],
    visible: [
      [Q(4), [A]],
      [Q(1), [A]],
    ],
    votes: [[A, "quality", 4]],
    events: [["add", A, "quality", 4]],
  },
  {
    name: "dimensions are reconciled apart",
    stored: [
      [A, "quality", 3],
      [A, "faithfulness", 2],
    ],
    visible: [
      [F(2), [A]],
      [F(4), [B]],
    ],
    votes: [
      [A, "faithfulness", 2],
      [B, "faithfulness", 4],
    ],
    events: [
      ["retract", A, "quality", 3],
      ["add", B, "faithfulness", 4],
    ],
  },
  {
    name: "reactions that are not votes, and a rater listed twice, count for nothing extra",
    stored: [[B, "quality", 2]],
    visible: [
      ["🔥", [A, B]],
      ["custom:123456", [A]],
      [Q(2), [B, B]],
      [Q(3), [A, A]],
    ],
    votes: [
      [A, "quality", 3],
      [B, "quality", 2],
    ],
    events: [["add", A, "quality", 3]],
  },
  {
    name: "an emoji variant (without U+FE0F) maps like the live reaction",
    stored: [],
    visible: [[Q(4).replace("\uFE0F", ""), [A]]],
    votes: [[A, "quality", 4]],
    events: [["add", A, "quality", 4]],
  },
];

const dataDir = mkdtempSync(join(tmpdir(), "imagine-reconcile-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const BACKENDS = [
  ["memory", () => openVoteStore("memory://", { dataDir })],
  [
    "sqlite",
    () => openVoteStore(`sqlite://r-${Math.random().toString(36).slice(2)}.sqlite`, { dataDir }),
  ],
] as const;

const sortRows = (rows: Row[]) =>
  [...rows].sort((a, b) => `${a[0]} ${a[1]}`.localeCompare(`${b[0]} ${b[1]}`));

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe.each(BACKENDS)("reconcileMessage on the %s store", (_name, open) => {
  const opened: KeyvVoteStore[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });

  it.each(CASES)("$name", async ({ stored, visible, votes, events }) => {
    const store = await open();
    opened.push(store);
    const generation = sampleGeneration({ messageRef: "m-1" });
    await store.saveGeneration(generation);
    for (const [rater, dimension, score] of stored) {
      await store.castVote({ generationId: generation.id, rater, dimension, score });
    }
    const before = (await collect(store.events())).length;
    const reactions: VisibleReaction[] = visible.map(([emoji, raters]) => ({ emoji, raters }));
    const input = { platform: "discord" as const, messageRef: "m-1", reactions, scale: DISCORD };

    const first = await reconcileMessage(store, input);
    expect(first.status).toBe("reconciled");
    expect(first.generationId).toBe(generation.id);
    const rows = (await store.votesOf(generation.id)).map(
      (v): Row => [v.rater, v.dimension, v.score],
    );
    expect(sortRows(rows)).toEqual(sortRows(votes));
    const logged = (await collect(store.events())).slice(before);
    expect(logged).toEqual(first.events);
    expect(
      logged.map((e): EventRow => {
        const row: EventRow = [e.kind, e.rater, e.dimension, e.score];
        if (e.previous !== undefined) row.push(e.previous);
        return row;
      }),
    ).toEqual(events);
    expect(logged.every((e) => e.source === RECONCILE_SOURCE)).toBe(true);

    // Idempotent: a second run, and one with the reactions listed in reverse, change nothing.
    expect((await reconcileMessage(store, input)).events).toEqual([]);
    const reversed = [...reactions]
      .reverse()
      .map((r) => ({ ...r, raters: [...r.raters].reverse() }));
    expect((await reconcileMessage(store, { ...input, reactions: reversed })).events).toEqual([]);
    expect((await collect(store.events())).length).toBe(before + events.length);
  });
});

describe("reconcileMessage", () => {
  const opened: KeyvVoteStore[] = [];
  const fresh = async () => {
    const store = await openVoteStore("memory://", { dataDir });
    opened.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });

  it("marks live events with the platform and keeps events without a source readable", async () => {
    const store = await fresh();
    const generation = sampleGeneration({ platform: "slack", messageRef: "C1/1.2" });
    await store.saveGeneration(generation);
    const vote = { generationId: generation.id, rater: "slack:U1", dimension: "quality" as const };
    expect((await store.castVote({ ...vote, score: 2 })).source).toBe("slack");
    expect((await store.retractVote({ ...vote, score: 2 }))?.source).toBe("slack");
    expect((await store.castVote({ ...vote, score: 3, source: "cli" })).source).toBe("cli");
    await expect(store.castVote({ ...vote, score: 3, source: "Bad Source" })).rejects.toThrow(
      /vote source/,
    );
    // Slack reaction names (skin tones ignored) through the same mapping as live reactions.
    const outcome = await reconcileMessage(store, {
      platform: "slack",
      messageRef: "C1/1.2",
      reactions: [
        { emoji: "four::skin-tone-3", raters: ["slack:U1"] },
        { emoji: SLACK.faithfulness[0] as string, raters: ["slack:U2"] },
      ],
      scale: SLACK,
    });
    expect(outcome.events.map((e) => [e.kind, e.rater, e.dimension, e.score])).toEqual([
      ["replace", "slack:U1", "quality", 4],
      ["add", "slack:U2", "faithfulness", 1],
    ]);
  });

  it("writes nothing for a message that is no generation, or another platform's", async () => {
    const store = await fresh();
    await store.saveGeneration(sampleGeneration({ messageRef: "m-1" }));
    const reactions = [{ emoji: Q(2), raters: [A] }];
    for (const [platform, messageRef] of [
      ["discord", "m-2"],
      ["slack", "m-1"],
    ] as const) {
      const scale = platform === "slack" ? SLACK : DISCORD;
      expect(await reconcileMessage(store, { platform, messageRef, reactions, scale })).toEqual({
        messageRef,
        status: "not-a-generation",
        events: [],
      });
    }
    expect(await collect(store.events())).toEqual([]);
  });

  it("refuses input it cannot trust", async () => {
    const store = await fresh();
    const base = { platform: "discord" as const, messageRef: "m", reactions: [], scale: DISCORD };
    await expect(reconcileMessage(store, { ...base, platform: "irc" as never })).rejects.toThrow(
      /platform "irc"/,
    );
    await expect(reconcileMessage(store, { ...base, messageRef: "" })).rejects.toThrow(
      /messageRef/,
    );
    await expect(
      reconcileMessage(store, { ...base, reactions: [{ emoji: Q(1), raters: [""] }] }),
    ).rejects.toThrow(/rater/);
    await expect(
      reconcileMessage(store, { ...base, reactions: [{ emoji: Q(1) } as never] }),
    ).rejects.toThrow(/list of raters/);
  });
});

describe("reconcileMessages", () => {
  it("reconciles many messages, at most `concurrency` at once, with progress and failures", async () => {
    const store = await openVoteStore("memory://", { dataDir });
    try {
      const refs = Array.from({ length: 12 }, (_, i) => `m-${i}`);
      for (const ref of refs.slice(0, 10)) {
        await store.saveGeneration(sampleGeneration({ messageRef: ref }));
      }
      let inFlight = 0;
      let maxInFlight = 0;
      const progress: number[] = [];
      const summary = await reconcileMessages(store, {
        platform: "discord",
        scale: DISCORD,
        messages: refs.map((messageRef) => ({ messageRef })),
        concurrency: 3,
        onProgress: (p) => {
          expect(p.total).toBe(12);
          progress.push(p.done);
        },
        reactionsOf: async ({ messageRef }) => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((resolve) => setImmediate(resolve));
          inFlight -= 1;
          if (messageRef === "m-3") throw new Error("rate limited for good");
          if (messageRef === "m-4") return undefined; // deleted
          return [
            { emoji: Q(2), raters: [A, B] },
            { emoji: F(3), raters: [A] },
          ];
        },
      });
      expect(maxInFlight).toBe(3);
      expect(progress).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(summary).toMatchObject({
        messages: 12,
        reconciled: 8,
        notGenerations: 2,
        gone: 1,
        added: 24,
        replaced: 0,
        retracted: 0,
        aborted: false,
      });
      expect(summary.failed.map((f) => f.messageRef)).toEqual(["m-3"]);
      // Idempotent over many messages too.
      const again = await reconcileMessages(store, {
        platform: "discord",
        scale: DISCORD,
        messages: store.postedMessages({ platform: "discord", since: new Date(0) }),
        reactionsOf: async ({ messageRef }) =>
          messageRef === "m-3" || messageRef === "m-4"
            ? []
            : [
                { emoji: Q(2), raters: [A, B] },
                { emoji: F(3), raters: [A] },
              ],
      });
      expect(again).toMatchObject({ messages: 10, reconciled: 10, added: 0, retracted: 0 });
    } finally {
      await store.close();
    }
  });

  it("stops taking messages when aborted, and refuses a bad concurrency", async () => {
    const store = await openVoteStore("memory://", { dataDir });
    try {
      const controller = new AbortController();
      const seen: string[] = [];
      async function* messages() {
        for (let i = 0; ; i++) yield { messageRef: `m-${i}` };
      }
      const summary = await reconcileMessages(store, {
        platform: "discord",
        scale: DISCORD,
        messages: messages(),
        concurrency: 1,
        signal: controller.signal,
        reactionsOf: async ({ messageRef }) => {
          seen.push(messageRef);
          if (seen.length === 5) controller.abort();
          return [];
        },
      });
      expect(seen).toHaveLength(5);
      expect(summary).toMatchObject({ messages: 5, notGenerations: 5, aborted: true });
      async function* broken() {
        yield { messageRef: "m-1" };
        throw new Error("store went away");
      }
      await expect(
        reconcileMessages(store, {
          platform: "discord",
          scale: DISCORD,
          messages: broken(),
          concurrency: 3,
          reactionsOf: async () => [],
        }),
      ).rejects.toThrow(/store went away/);
      await expect(
        reconcileMessages(store, {
          platform: "discord",
          scale: DISCORD,
          messages: [],
          concurrency: 0,
          reactionsOf: async () => [],
        }),
      ).rejects.toThrow(/concurrency/);
    } finally {
      await store.close();
    }
  });
});
