/**
 * Reconciliation after downtime: 1,000 image messages with 8 voting reactions each (quality 1–4,
 * faithfulness 1–4), read from an in-memory fake platform, against the memory and SQLite stores.
 * Before the run the store disagrees with the reactions the way a crash and downtime leave it
 * (seeded): per (rater, dimension) about 40% match, 20% stale (another score stored), 20%
 * missing (reaction added while down), and 20% ghosts (a stored vote whose reaction is gone);
 * some raters have two reactions in one dimension. Timed: the first pass (which writes the
 * changes) and a second pass (which must find nothing to do). Printed, not asserted.
 *
 *   npx tsx bench/reconcile.ts [--messages 1000] [--raters 6] [--concurrency 4] [--latency-ms 0]
 *
 * --latency-ms adds a delay per reactions read, standing in for the platform's API calls.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_FILE } from "../src/core/config.js";
import { seededRandom } from "../src/core/random.js";
import { DIMENSIONS, type Generation } from "../src/core/types.js";
import {
  type EmojiTable,
  type KeyvVoteStore,
  openVoteStore,
  reconcileMessages,
  type VisibleReaction,
} from "../src/core/votes/index.js";
import { benchGeneration } from "./lib/generation.js";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "1000" },
    raters: { type: "string", default: "6" },
    concurrency: { type: "string", default: "4" },
    "latency-ms": { type: "string", default: "0" },
  },
});
const MESSAGES = Number(values.messages);
const RATERS = Number(values.raters);
const CONCURRENCY = Number(values.concurrency);
const LATENCY_MS = Number(values["latency-ms"]);

const { readFileSync } = await import("node:fs");
const SCALE = (
  JSON.parse(readFileSync(DEFAULT_CONFIG_FILE, "utf8")) as { votes: { discordEmoji: EmojiTable } }
).votes.discordEmoji;

function generation(i: number): Generation {
  return benchGeneration(`g-${i}`, {
    createdAt: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
    messageRef: `channel/${1_000_000 + i}`,
    seed: i,
  });
}

/** The fake platform's reactions per message, and the store's diverged state, both seeded. */
function scenario(): {
  reactions: Map<string, VisibleReaction[]>;
  stored: {
    generationId: string;
    rater: string;
    dimension: "quality" | "faithfulness";
    score: number;
  }[];
} {
  const random = seededRandom(11);
  const pick = (n: number) => Math.floor(random.next() * n);
  const reactions = new Map<string, VisibleReaction[]>();
  const stored: ReturnType<typeof scenario>["stored"] = [];
  for (let m = 0; m < MESSAGES; m++) {
    const g = generation(m);
    // 8 reactions, each with its raters.
    const raters = new Map<string, string[]>(
      DIMENSIONS.flatMap((d) => SCALE[d].map((emoji) => [emoji, [] as string[]])),
    );
    for (let r = 0; r < RATERS; r++) {
      const rater = `discord:${100 + r}`;
      for (const dimension of DIMENSIONS) {
        const roll = random.next();
        const score = pick(4) + 1;
        const other = ((score + pick(3)) % 4) + 1;
        const visible = (s: number) => raters.get(SCALE[dimension][s - 1] as string)?.push(rater);
        const store = (s: number) =>
          stored.push({ generationId: g.id, rater, dimension, score: s });
        if (roll < 0.4) {
          visible(score);
          store(score);
        } else if (roll < 0.6) {
          visible(score);
          store(other); // stale
        } else if (roll < 0.8) {
          visible(score); // missing
          if (random.next() < 0.3) visible(other); // and a second reaction
        } else {
          store(score); // ghost
        }
      }
    }
    reactions.set(
      g.messageRef as string,
      [...raters].map(([emoji, list]) => ({ emoji, raters: list })),
    );
  }
  return { reactions, stored };
}

async function run(name: string, store: KeyvVoteStore): Promise<void> {
  const { reactions, stored } = scenario();
  const seedStart = performance.now();
  for (let m = 0; m < MESSAGES; m++) await store.saveGeneration(generation(m));
  for (const vote of stored) await store.castVote(vote);
  const seedMs = performance.now() - seedStart;
  const visibleReactions = [...reactions.values()].reduce(
    (sum, list) => sum + list.reduce((n, r) => n + r.raters.length, 0),
    0,
  );
  const reactionsOf = async ({ messageRef }: { messageRef: string }) => {
    if (LATENCY_MS > 0) await new Promise((resolve) => setTimeout(resolve, LATENCY_MS));
    return reactions.get(messageRef);
  };
  const pass = async () => {
    const start = performance.now();
    const summary = await reconcileMessages(store, {
      platform: "discord",
      scale: SCALE,
      messages: store.postedMessages({
        platform: "discord",
        since: new Date(Date.UTC(2025, 0, 1)),
      }),
      reactionsOf,
      concurrency: CONCURRENCY,
    });
    return { ms: performance.now() - start, summary };
  };
  const first = await pass();
  const second = await pass();
  const line = (label: string, { ms, summary }: Awaited<ReturnType<typeof pass>>) =>
    `  ${label}: ${summary.messages} messages in ${(ms / 1000).toFixed(2)} s ` +
    `(${(ms / summary.messages).toFixed(2)} ms/message): ${summary.added} added, ` +
    `${summary.replaced} replaced, ${summary.retracted} retracted, ${summary.failed.length} failed`;
  console.log(
    `${name}: ${MESSAGES} messages × 8 reactions, ${visibleReactions} visible rater reactions, ` +
      `${stored.length} stored votes before (seeded in ${(seedMs / 1000).toFixed(1)} s); ` +
      `concurrency ${CONCURRENCY}, platform latency ${LATENCY_MS} ms`,
  );
  console.log(line("first pass ", first));
  console.log(line("second pass", second));
  if (second.summary.added + second.summary.replaced + second.summary.retracted > 0) {
    throw new Error("the second pass changed votes: reconciliation is not idempotent");
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "imagine-bench-reconcile-"));
try {
  for (const [name, url] of [
    ["memory", "memory://"],
    ["sqlite", "sqlite://reconcile.sqlite"],
  ] as const) {
    const store = await openVoteStore(url, { dataDir });
    try {
      await run(name, store);
    } finally {
      await store.close();
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
