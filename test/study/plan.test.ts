import { describe, expect, it } from "vitest";
import { makeStudyPlan, planSurveys } from "../../src/core/study/plan.js";

const CONCEPTS = [
  "london",
  "a cat",
  "a lighthouse",
  "mountains",
  "a red car",
  "a forest",
  "a city at night",
  "a bowl of fruit",
  "a castle",
  "the ocean",
];
const ARMS = ["base", "ft-no-tags", "ft-tags"];
const paper = (seed: number) =>
  makeStudyPlan({ concepts: CONCEPTS, promptsPerConcept: 5, arms: ARMS, surveys: 2, seed });

describe("makeStudyPlan (the paper's batch design)", () => {
  it("has 10 × 5 × 3 = 150 items, 5 prompt slots per (concept, arm), ids that hide the arm", () => {
    const plan = paper(42);
    expect(plan.items).toHaveLength(150);
    for (const concept of CONCEPTS) {
      for (const arm of ARMS) {
        const cell = plan.items.filter((i) => i.concept === concept && i.arm === arm);
        expect(cell.map((i) => i.promptIndex).sort()).toEqual([1, 2, 3, 4, 5]);
      }
    }
    expect(new Set(plan.items.map((i) => i.id)).size).toBe(150);
    for (const item of plan.items) {
      expect(item.id).toMatch(/^s[12]-\d{3}$/);
      for (const arm of ARMS) expect(item.id).not.toContain(arm);
    }
  });

  it("splits into 2 surveys of 75 with 25 images of each arm, and cells split 3/2", () => {
    for (const seed of [1, 2, 3, 42, 999]) {
      const plan = paper(seed);
      const surveys = planSurveys(plan);
      expect(surveys.map((s) => s.length)).toEqual([75, 75]);
      for (const survey of surveys) {
        for (const arm of ARMS) expect(survey.filter((i) => i.arm === arm)).toHaveLength(25);
        expect(survey.map((i) => i.position)).toEqual(Array.from({ length: 75 }, (_, i) => i + 1));
        for (const concept of CONCEPTS) {
          for (const arm of ARMS) {
            const n = survey.filter((i) => i.concept === concept && i.arm === arm).length;
            expect([2, 3]).toContain(n);
          }
        }
      }
    }
  });

  it("shares a seed across arms for one (concept, prompt slot)", () => {
    const plan = paper(5);
    for (const concept of CONCEPTS) {
      for (let p = 1; p <= 5; p++) {
        const seeds = plan.items.filter((i) => i.concept === concept && i.promptIndex === p);
        expect(seeds).toHaveLength(3);
        expect(new Set(seeds.map((i) => i.seed)).size).toBe(1);
      }
    }
  });

  it("is deterministic for a seed and different for another; the order is shuffled", () => {
    expect(paper(7)).toEqual(paper(7));
    const a = paper(7).items.map((i) => `${i.concept}/${i.arm}/${i.promptIndex}`);
    const b = paper(8).items.map((i) => `${i.concept}/${i.arm}/${i.promptIndex}`);
    expect(b).not.toEqual(a);
    // Not grouped by arm: the arm changes often along the posting order.
    const changes = paper(7).items.filter((item, i, all) => i > 0 && item.arm !== all[i - 1]?.arm);
    expect(changes.length).toBeGreaterThan(60);
  });

  it("balances within one when the numbers do not divide", () => {
    const plan = makeStudyPlan({
      concepts: ["a", "b", "c"],
      promptsPerConcept: 3,
      arms: ["x", "y"],
      surveys: 4,
      seed: 3,
    });
    const surveys = planSurveys(plan);
    const sizes = surveys.map((s) => s.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    for (const arm of ["x", "y"]) {
      const counts = surveys.map((s) => s.filter((i) => i.arm === arm).length);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
  });

  it("rejects empty or duplicated names and impossible numbers", () => {
    const base = { concepts: ["a"], promptsPerConcept: 1, arms: ["x", "y"], surveys: 1, seed: 1 };
    expect(() => makeStudyPlan({ ...base, concepts: [] })).toThrow(/concept/);
    expect(() => makeStudyPlan({ ...base, arms: ["x", "x"] })).toThrow(/twice/);
    expect(() => makeStudyPlan({ ...base, surveys: 3 })).toThrow(/surveys/);
    expect(() => makeStudyPlan({ ...base, promptsPerConcept: 0 })).toThrow(/promptsPerConcept/);
  });
});
