/**
 * One rater's conflicting changes to one vote, delivered to several store handles (processes) in
 * different orders: the scenario and the answer it must reach, computed here independently of the
 * store (sort by (at, event id), then cast sets, retract removes only its own score).
 */
import { type RandomSource, seededRandom } from "../../src/core/random.js";
import type { Ballot, Dimension, VoteEvent, VoteStore } from "../../src/core/types.js";

export interface Conflict {
  op: "cast" | "retract";
  score: number;
  at: string;
  eventId: string;
}

export function shuffled<T>(items: readonly T[], random: RandomSource): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * `count` changes by one rater, a second apart, some at the same millisecond (the event id
 * decides): casts of every score and retracts of scores that were or were not the vote then.
 */
export function conflictingChanges(seed: number, count = 12): Conflict[] {
  const random = seededRandom(seed);
  const start = Date.parse("2026-03-01T12:00:00.000Z");
  return Array.from({ length: count }, (_, i) => ({
    op: random.next() < 0.35 ? ("retract" as const) : ("cast" as const),
    score: 1 + Math.floor(random.next() * 4),
    // Pairs share a time: the tie-break by event id matters.
    at: new Date(start + Math.floor(i / 2) * 1000).toISOString(),
    eventId: `Ev${seed}-${(count - i).toString().padStart(3, "0")}`,
  }));
}

/** The vote the changes leave, folded in (at, id) order without the store. */
export function expectedScore(changes: readonly Conflict[], source: string): number | undefined {
  const id = (change: Conflict) => `${source}.${change.eventId}`;
  const ordered = [...changes].sort((a, b) =>
    a.at !== b.at ? (a.at < b.at ? -1 : 1) : id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0,
  );
  let score: number | undefined;
  for (const change of ordered) {
    if (change.op === "cast") score = change.score;
    else if (score === change.score) score = undefined;
  }
  return score;
}

/** The event log's replay rule (study/results.ts currentVotes): a retract of another score is skipped. */
export function replayScore(events: readonly VoteEvent[]): number | undefined {
  let score: number | undefined;
  for (const event of events) {
    if (event.kind !== "retract") score = event.score;
    else if (score === event.score) score = undefined;
  }
  return score;
}

export function ballot(
  change: Conflict,
  target: { generationId: string; rater: string; dimension: Dimension; source: string },
): Ballot {
  return {
    ...target,
    score: change.score,
    at: change.at,
    eventId: change.eventId,
  };
}

export function applyConflict(
  store: VoteStore,
  change: Conflict,
  target: Parameters<typeof ballot>[1],
): Promise<unknown> {
  return change.op === "cast"
    ? store.castVote(ballot(change, target))
    : store.retractVote(ballot(change, target));
}
