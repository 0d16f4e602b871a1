import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { armForAssignment, blockOrder, countsAfter } from "../../src/core/study/assign.js";

const ARMS = ["base", "ft-no-tags", "ft-tags"];
const secret = () => randomBytes(32).toString("hex");

describe("blind balanced assignment (permuted blocks)", () => {
  it("keeps the counts per arm within one of each other at every prefix", () => {
    for (const arms of [ARMS, ["a", "b"], ["a", "b", "c", "d", "e"]]) {
      const key = secret();
      const counts = Object.fromEntries(arms.map((arm) => [arm, 0]));
      for (let n = 0; n < 600; n++) {
        const arm = armForAssignment(key, arms, n);
        counts[arm] = (counts[arm] as number) + 1;
        const values = Object.values(counts);
        expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(1);
      }
      expect(countsAfter(key, arms, 600)).toEqual(counts);
    }
  });

  it("is not round-robin or periodic: block orders vary within a study", () => {
    const key = secret();
    const blocks = Array.from({ length: 60 }, (_, b) => blockOrder(key, ARMS, b).join(","));
    // 3! = 6 orders; 60 independent blocks show several of them, and the sequence is no cycle.
    expect(new Set(blocks).size).toBeGreaterThanOrEqual(4);
    for (const period of [1, 2, 3]) {
      expect(blocks.every((block, i) => i < period || block === blocks[i - period])).toBe(false);
    }
    const sequence = Array.from({ length: 180 }, (_, n) => armForAssignment(key, ARMS, n));
    const roundRobin = sequence.every((arm, n) => n < 3 || arm === sequence[n - 3]);
    expect(roundRobin).toBe(false);
  });

  it("draws the first arm uniformly across studies (and each block is a permutation)", () => {
    const studies = 3000;
    const first = Object.fromEntries(ARMS.map((arm) => [arm, 0]));
    for (let s = 0; s < studies; s++) {
      const key = secret();
      const block = blockOrder(key, ARMS, 0);
      expect([...block].sort()).toEqual([...ARMS].sort());
      first[block[0] as string] = (first[block[0] as string] as number) + 1;
    }
    // χ² with 2 degrees of freedom: 13.8 is the 0.1% critical value.
    const expected = studies / ARMS.length;
    const chi2 = Object.values(first).reduce((sum, o) => sum + (o - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(13.8);
  });

  it("is a function of the secret and the counter only (so a restart resumes the same blocks)", () => {
    const key = secret();
    const a = Array.from({ length: 30 }, (_, n) => armForAssignment(key, ARMS, n));
    const b = Array.from({ length: 30 }, (_, n) => armForAssignment(key, ARMS, n));
    expect(b).toEqual(a);
    const other = Array.from({ length: 30 }, (_, n) => armForAssignment(secret(), ARMS, n));
    expect(other).not.toEqual(a); // (6⁻¹⁰ chance of equality)
  });
});
