/** Arm comparisons and the normal distribution, against published values. */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import {
  mannWhitneyU,
  normalCdf,
  normalSf,
  permutationTest,
  twoSidedP,
} from "../../src/core/stats/index.js";

describe("normal distribution", () => {
  it("matches textbook values", () => {
    // Φ(0) = ½; the two-sided 5% point z = 1.959963984540054 (qnorm(0.975) in R).
    expect(normalCdf(0)).toBe(0.5);
    expect(twoSidedP(1.959963984540054)).toBeCloseTo(0.05, 15);
    // Abramowitz & Stegun, Table 26.1: Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208.
    expect(normalCdf(1)).toBeCloseTo(0.8413447460685429, 15);
    expect(normalCdf(2)).toBeCloseTo(0.9772498680518208, 15);
    // Far tail keeps relative precision: Q(10) = 7.619853024160527e-24.
    expect(normalSf(10) / 7.619853024160527e-24).toBeCloseTo(1, 12);
    expect(normalSf(-3) + normalSf(3)).toBeCloseTo(1, 15);
  });
});

describe("Mann–Whitney U", () => {
  it("reproduces the SciPy documentation example: U = 17, asymptotic p = 0.11134688653314041", () => {
    // scipy.stats.mannwhitneyu docs, Examples (ages of male and female employees, after
    // Conover's "Practical Nonparametric Statistics"): U1 = 17.0; method="asymptotic" gives
    // pnorm = 0.11134688653314041 with the continuity correction, z = (3 − 10 + 0.5)/√(200/12).
    const males = [19, 22, 16, 29, 24];
    const females = [20, 11, 17, 12];
    const result = mannWhitneyU(males, females);
    expect(result.u).toBe(17);
    expect(result.z as number).toBeCloseTo(6.5 / Math.sqrt(200 / 12), 14);
    expect(result.p as number).toBeCloseTo(0.11134688653314041, 14);
    expect(result.rankBiserial).toBeCloseTo(2 * (17 / 20) - 1, 14);
    // Swapping the samples mirrors U, z and the effect size; p is unchanged.
    const swapped = mannWhitneyU(females, males);
    expect(swapped.u).toBe(3);
    expect(swapped.z).toBeCloseTo(-(result.z as number), 14);
    expect(swapped.p).toBeCloseTo(result.p as number, 14);
  });

  it("corrects the variance for ties (hand-derived)", () => {
    // [1, 2, 2] vs [2, 3, 4]: midranks 1, 3, 3 | 3, 5, 6 → R₁ = 7, U = 7 − 6 = 1; one tie
    // group of 3: σ² = (3·3/12)·(7 − (27 − 3)/(6·5)) = 4.65; z = −(4.5 − 1 − 0.5)/√4.65.
    const result = mannWhitneyU([1, 2, 2], [2, 3, 4]);
    expect(result.u).toBe(1);
    expect(result.z as number).toBeCloseTo(-3 / Math.sqrt(4.65), 14);
    expect(result.p as number).toBeCloseTo(2 * normalSf(3 / Math.sqrt(4.65)), 14);
    // Cross-check (not a published value): SciPy 1.17.1 mannwhitneyu(method="asymptotic")
    // gives 0.16415972847851523 here and 0.09326821585558988 for the Likert samples below.
    expect(result.p as number).toBeCloseTo(0.16415972847851523, 13);
    const likert = mannWhitneyU([1, 2, 2, 3, 3, 3, 4, 4, 4, 2], [1, 1, 2, 2, 2, 3, 3, 4, 1, 1, 2]);
    expect(likert.u).toBe(78.5);
    expect(likert.p as number).toBeCloseTo(0.09326821585558988, 13);
  });

  it("is undefined, with a reason, when every value is the same", () => {
    const result = mannWhitneyU([3, 3], [3, 3, 3]);
    expect(result.z).toBeNull();
    expect(result.p).toBeNull();
    expect(result.reason).toMatch(/no variance/);
    expect(result.rankBiserial).toBe(0);
  });

  it("gives p = 1 when the samples are identical", () => {
    const result = mannWhitneyU([1, 2, 3, 4], [4, 3, 2, 1]);
    expect(result.z).toBe(0);
    expect(result.p).toBe(1);
  });
});

describe("permutation test", () => {
  it("is deterministic for a seed and agrees with Mann–Whitney on a clear difference", () => {
    const a = [4, 4, 3, 4, 3, 4, 4, 3, 4, 4];
    const b = [1, 2, 2, 1, 3, 2, 1, 2, 2, 1];
    const first = permutationTest(a, b, seededRandom(5), 2000);
    const second = permutationTest(a, b, seededRandom(5), 2000);
    expect(second).toEqual(first);
    expect(first.meanDifference).toBeCloseTo(2, 12);
    expect(first.p).toBe(1 / 2001); // no random split is as extreme as the observed one
  });

  it("gives p near 1 without a difference", () => {
    const result = permutationTest([1, 2, 3, 4], [4, 3, 2, 1], seededRandom(1), 1000);
    expect(result.meanDifference).toBe(0);
    expect(result.p).toBe(1);
  });

  it("matches the exact permutation p of a small example within Monte-Carlo error", () => {
    // [1, 2, 3] vs [4, 5, 6]: of the C(6,3) = 20 splits, 2 are as extreme (|diff| = 3): p = 0.1.
    const result = permutationTest([1, 2, 3], [4, 5, 6], seededRandom(9), 20_000);
    expect(Math.abs(result.p - 0.1)).toBeLessThan(0.01);
  });
});
