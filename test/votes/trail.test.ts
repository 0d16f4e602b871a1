/** A vote's trail (src/core/votes/trail.ts): order, dedupe, logging once, compaction. */
import { describe, expect, it } from "vitest";
import {
  applyChange,
  MAX_TRAIL,
  type TrailChange,
  type VoteTrail,
} from "../../src/core/votes/trail.js";

const identity = { generationId: "g", rater: "slack:U1", dimension: "quality" as const };

function change(second: number, op: TrailChange["op"], score: number): TrailChange {
  return {
    at: new Date(Date.UTC(2026, 2, 1, 12, 0, second)).toISOString(),
    id: `slack.Ev${String(second).padStart(3, "0")}`,
    op,
    score,
    source: "slack",
    eventId: `Ev${String(second).padStart(3, "0")}`,
  };
}

function applyAll(changes: TrailChange[], trail: VoteTrail = { changes: [] }) {
  let current: VoteTrail = trail;
  const logged: string[] = [];
  let last: ReturnType<typeof applyChange> | undefined;
  for (const next of changes) {
    last = applyChange(current, next, identity);
    if (!last.duplicate) current = last.trail;
    logged.push(...last.newlyLogged.map((entry) => entry.id));
  }
  return { trail: current, logged, last };
}

describe("vote trail", () => {
  it("folds in time order: a retract removes only its own score, a late cast slots in", () => {
    const retract = applyAll([change(3, "retract", 4)]);
    // Nothing to remove yet: kept (a cast from before may still come), not logged.
    expect(retract.logged).toEqual([]);
    const { last, logged } = applyAll([change(1, "cast", 3)], retract.trail);
    expect(last?.current?.score).toBe(3);
    expect(logged).toEqual(["slack.Ev001"]);
    // 4 cast at second 2 is removed by the retract of 4 at second 3, which is logged now, once.
    const later = applyChange(last?.trail as VoteTrail, change(2, "cast", 4), identity);
    expect(later.current).toBeUndefined();
    expect(later.newlyLogged.map((entry) => [entry.id, entry.event.kind])).toEqual([
      ["slack.Ev002", "replace"],
      ["slack.Ev003", "retract"],
    ]);
    const again = applyChange(later.trail, change(0, "cast", 1), identity);
    expect(again.current).toBeUndefined();
    expect(again.newlyLogged.map((entry) => entry.id)).toEqual(["slack.Ev000"]);
  });

  it("recognises a redelivered change and changes nothing", () => {
    const { trail } = applyAll([change(1, "cast", 2)]);
    const again = applyChange(trail, change(1, "cast", 2), identity);
    expect(again.duplicate).toBe(true);
    expect(again.newlyLogged).toEqual([]);
    expect(again.event).toMatchObject({ kind: "add", score: 2, eventId: "Ev001" });
  });

  it(`keeps about ${MAX_TRAIL} changes, from a cast on, so late older changes cannot change the vote`, () => {
    const many = Array.from({ length: 30 }, (_, i) =>
      change(i + 1, i % 3 === 2 ? "retract" : "cast", (i % 4) + 1),
    );
    const { trail, last } = applyAll(many);
    expect(trail.changes.length).toBeLessThanOrEqual(MAX_TRAIL + 2);
    expect(trail.changes[0]?.op).toBe("cast");
    expect(trail.base).toBeDefined();
    // Older than everything kept: a cast and a retract arriving now leave the vote as it is.
    for (const late of [change(0, "cast", 4), change(0, "retract", last?.current?.score ?? 1)]) {
      expect(applyChange(trail, late, identity).current).toEqual(last?.current);
    }
  });
});
