/**
 * The study statistics on simulated studies with known truth (a small, fixed-seed version of
 * scripts/simulate-study.ts, which runs 1,000 studies): deterministic, so it cannot flake.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import {
  checkCalibration,
  expectedScore,
  latentForMean,
  PAPER_RATERS,
  simulateRatings,
} from "../../src/core/study/simulate.js";

describe("simulated raters", () => {
  it("inverts the expected score of a rounded normal latent", () => {
    // Hand check: μ = 2.5, σ = 1 → 1 + Q(−1) + Q(0) + Q(1) = 1 + 0.8413 + 0.5 + 0.1587 = 2.5.
    expect(expectedScore(2.5, 1)).toBeCloseTo(2.5, 12);
    expect(expectedScore(latentForMean(2.81, 1), 1)).toBeCloseTo(2.81, 9);
  });

  it("gives every image of a survey one rating per rater and dimension", () => {
    const plan = makeStudyPlan({
      concepts: ["a", "b"],
      promptsPerConcept: 2,
      arms: ["x", "y", "z"],
      surveys: 2,
      seed: 1,
    });
    const ratings = simulateRatings(
      plan,
      PAPER_RATERS,
      {
        latent: { x: { quality: 2 }, y: { quality: 3 }, z: { quality: 3 } },
        imageSd: 0.5,
        noiseSd: 0.5,
      },
      seededRandom(1),
    );
    expect(ratings).toHaveLength(12 * 4);
    for (const rating of ratings) {
      expect(PAPER_RATERS[Number(rating.survey) - 1]).toContain(rating.rater);
      expect([1, 2, 3, 4]).toContain(rating.score);
    }
  });
});

describe("calibration on simulated studies (fixed seed)", () => {
  it("image CIs cover the true means near 95%, the permutation test keeps its size", () => {
    const result = checkCalibration({
      studies: 120,
      seed: 7,
      concepts: 10,
      promptsPerConcept: 5,
      arms: ["base", "ft-no-tags", "ft-tags"],
      surveys: 2,
      raters: PAPER_RATERS,
      imageSd: 0.7,
      noiseSd: 0.7,
      armMeans: { base: 2.81, "ft-no-tags": 2.96, "ft-tags": 3.04 },
      resamples: 500,
      permutationRounds: 199,
    });
    const coverage = result.covered / result.intervals;
    const ratingsCoverage = result.coveredByRatingsBootstrap / result.intervals;
    const size = result.permutationRejections / result.nullTests;
    const mannWhitneySize = result.mannWhitneyRejections / result.nullTests;
    expect(result.intervals).toBe(360);
    expect(result.nullTests).toBe(360);
    // 360 intervals: the binomial SD of a 95% rate is 1.1 points.
    expect(coverage).toBeGreaterThan(0.91);
    expect(coverage).toBeLessThan(0.985);
    // Treating the 4 ratings of an image as independent undercovers badly.
    expect(ratingsCoverage).toBeLessThan(0.86);
    expect(size).toBeLessThan(0.085);
    expect(mannWhitneySize).toBeGreaterThan(0.12);
  });
});
