/** Summaries, the bootstrap and Table 1. */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import {
  type ArmRating,
  bootstrapMeanCi,
  formatSummaryTable,
  lnFactorial,
  meanAndSd,
  quantileSorted,
  sampleBinomial,
  summariesToCsv,
  summariesToJson,
  summarize,
} from "../../src/core/stats/index.js";

/** Ratings with a given count per score 1–4, for one arm and dimension. */
function ratingsFor(arm: string, dimension: string, counts: number[]): ArmRating[] {
  const ratings: ArmRating[] = [];
  counts.forEach((count, c) => {
    for (let i = 0; i < count; i++) {
      ratings.push({
        arm,
        dimension,
        item: `${arm}-${dimension}-${c}-${i}`,
        rater: `r${i % 7}`,
        score: c + 1,
      });
    }
  });
  return ratings;
}

describe("meanAndSd", () => {
  it("uses the sample SD (n − 1)", () => {
    // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population SD 2, sample SD √(32/7).
    const result = meanAndSd([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(result.mean).toBe(5);
    expect(result.sd).toBeCloseTo(Math.sqrt(32 / 7), 14);
    expect(meanAndSd([3]).sd).toBeNull();
  });
});

describe("quantileSorted (type 7)", () => {
  it("interpolates between order statistics like R's quantile() default", () => {
    // R: quantile(1:10, c(0.025, 0.975)) → 1.225, 9.775.
    const values = Float64Array.from({ length: 10 }, (_, i) => i + 1);
    expect(quantileSorted(values, 0.025)).toBeCloseTo(1.225, 12);
    expect(quantileSorted(values, 0.975)).toBeCloseTo(9.775, 12);
  });
});

describe("exact binomial sampler", () => {
  it("has the binomial mean and variance", () => {
    for (const [n, p] of [
      [20, 0.3],
      [16_000, 0.25],
      [5, 0.9],
      [1, 0.5],
    ] as const) {
      const random = seededRandom(n);
      const draws = Array.from({ length: 20_000 }, () => sampleBinomial(n, p, random));
      const { mean, sd } = meanAndSd(draws);
      const expectedSd = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(mean - n * p)).toBeLessThan((5 * expectedSd) / Math.sqrt(20_000));
      expect((sd as number) / expectedSd).toBeGreaterThan(0.96);
      expect((sd as number) / expectedSd).toBeLessThan(1.04);
      for (const draw of draws) expect(Number.isInteger(draw) && draw >= 0 && draw <= n).toBe(true);
    }
  });

  it("matches the binomial probabilities of a small case", () => {
    const n = 6;
    const p = 0.35;
    const random = seededRandom(3);
    const frequencies = new Array<number>(n + 1).fill(0);
    const draws = 60_000;
    for (let i = 0; i < draws; i++) {
      const x = sampleBinomial(n, p, random);
      frequencies[x] = (frequencies[x] as number) + 1;
    }
    for (let x = 0; x <= n; x++) {
      const pmf =
        Math.exp(lnFactorial(n) - lnFactorial(x) - lnFactorial(n - x)) *
        p ** x *
        (1 - p) ** (n - x);
      const se = Math.sqrt((pmf * (1 - pmf)) / draws);
      expect(Math.abs((frequencies[x] as number) / draws - pmf)).toBeLessThan(5 * se + 1e-9);
    }
  });

  it("handles the edges", () => {
    const random = seededRandom(1);
    expect(sampleBinomial(0, 0.5, random)).toBe(0);
    expect(sampleBinomial(10, 0, random)).toBe(0);
    expect(sampleBinomial(10, 1, random)).toBe(10);
    // ln(n!) switches from the table to Stirling's series at 1024 without a jump.
    expect(lnFactorial(1024) - lnFactorial(1023)).toBeCloseTo(Math.log(1024), 10);
    expect(lnFactorial(170)).toBeCloseTo(Math.log(7.257415615307994e306), 10);
  });
});

describe("bootstrap CI of the mean", () => {
  const values = [
    ...Array<number>(30).fill(1),
    ...Array<number>(70).fill(2),
    ...Array<number>(120).fill(3),
    ...Array<number>(80).fill(4),
  ];

  it("is deterministic for a seed and differs for another seed", () => {
    const a = bootstrapMeanCi(values, seededRandom(42));
    const b = bootstrapMeanCi(values, seededRandom(42));
    const c = bootstrapMeanCi(values, seededRandom(43));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(a.resamples).toBe(2000);
    expect(a.level).toBe(0.95);
  });

  it("has the width of a normal interval with the bootstrap's standard error", () => {
    // The resampled mean has SD σ̂/√n with σ̂ the plug-in (÷ n) SD; for n = 300 the 95%
    // percentile interval is close to mean ± 1.96·σ̂/√n.
    const { mean, sd } = meanAndSd(values);
    const n = values.length;
    const plugIn = (sd as number) * Math.sqrt((n - 1) / n);
    const halfWidth = (1.959963984540054 * plugIn) / Math.sqrt(n);
    const ci = bootstrapMeanCi(values, seededRandom(7), { resamples: 20_000 });
    expect(ci.low).toBeLessThan(mean);
    expect(ci.high).toBeGreaterThan(mean);
    expect((ci.high - ci.low) / (2 * halfWidth)).toBeGreaterThan(0.95);
    expect((ci.high - ci.low) / (2 * halfWidth)).toBeLessThan(1.05);
    expect((ci.low + ci.high) / 2).toBeCloseTo(mean, 2);
  });

  it("agrees with naive resampling in distribution", () => {
    // Naive bootstrap (n single draws per resample) as the reference for the count-based one.
    const random = seededRandom(11);
    const naive = new Float64Array(4000);
    for (let b = 0; b < naive.length; b++) {
      let sum = 0;
      for (let i = 0; i < values.length; i++)
        sum += values[Math.floor(random.next() * values.length)] as number;
      naive[b] = sum / values.length;
    }
    naive.sort();
    const fast = bootstrapMeanCi(values, seededRandom(12), { resamples: 4000 });
    expect(Math.abs(fast.low - quantileSorted(naive, 0.025))).toBeLessThan(0.02);
    expect(Math.abs(fast.high - quantileSorted(naive, 0.975))).toBeLessThan(0.02);
  });

  it("is a point for constant data and rejects bad options", () => {
    expect(bootstrapMeanCi([3, 3, 3], seededRandom(1), { resamples: 10 })).toMatchObject({
      low: 3,
      high: 3,
    });
    expect(() => bootstrapMeanCi([1, 2], seededRandom(1), { resamples: 0 })).toThrow(/resamples/);
    expect(() => bootstrapMeanCi([1, 2], seededRandom(1), { level: 1 })).toThrow(/level/);
  });
});

describe("summarize and Table 1", () => {
  const ratings: ArmRating[] = [
    ...ratingsFor("No FT", "quality", [10, 15, 30, 20]),
    ...ratingsFor("No FT", "faithfulness", [8, 12, 20, 35]),
    ...ratingsFor("FT with tags", "quality", [5, 15, 25, 30]),
    ...ratingsFor("FT with tags", "faithfulness", [20, 10, 15, 30]),
  ];

  it("summarizes each arm × dimension with n, mean, sample SD and a seeded CI", () => {
    const summaries = summarize(ratings, { seed: 3 });
    expect(summaries.map((s) => [s.arm, s.dimension, s.n])).toEqual([
      ["No FT", "quality", 75],
      ["No FT", "faithfulness", 75],
      ["FT with tags", "quality", 75],
      ["FT with tags", "faithfulness", 75],
    ]);
    const first = summaries[0];
    const scores = ratings
      .filter((r) => r.arm === "No FT" && r.dimension === "quality")
      .map((r) => r.score);
    expect(first?.mean).toBeCloseTo(meanAndSd(scores).mean, 14);
    expect(first?.sd).toBeCloseTo(meanAndSd(scores).sd as number, 14);
    expect(first?.ci?.low).toBeLessThan(first?.mean as number);
    // The same seed gives the same intervals whatever the order of the ratings.
    const reversed = summarize([...ratings].reverse(), { seed: 3 });
    for (const summary of summaries) {
      const same = reversed.find((s) => s.arm === summary.arm && s.dimension === summary.dimension);
      expect(same?.ci).toEqual(summary.ci);
    }
    expect(summarize(ratings, { seed: 4 })[0]?.ci).not.toEqual(first?.ci);
  });

  it("prints the paper's Table 1 layout: rows Q/F, a column per arm, mean (SD)", () => {
    const table = formatSummaryTable(summarize(ratings), {
      arms: ["No FT", "FT no tags", "FT with tags"],
    });
    const lines = table.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^\s+No FT\s+FT no tags\s+FT with tags$/);
    // Hand-checked: 10/15/30/20 ratings of 1/2/3/4 → mean 210/75 = 2.80, SD √(72/74) = 0.99.
    expect(lines[1]).toMatch(/^Q\s+2\.80 \(0\.99\)\s+–\s+3\.07 \(0\.93\)$/);
    expect(lines[2]).toMatch(/^F\s+3\.09 \(1\.03\)\s+–\s+2\.73 \(1\.24\)$/);
  });

  it("gives JSON and CSV forms with nulls for single ratings", () => {
    const single: ArmRating[] = [
      { arm: "a,b", dimension: "quality", item: "i", rater: "r", score: 2 },
    ];
    const json = summariesToJson(summarize(single));
    expect(json).toEqual([
      {
        arm: "a,b",
        dimension: "quality",
        n: 1,
        mean: 2,
        sd: null,
        ci_low: null,
        ci_high: null,
        ci_level: null,
        resamples: null,
        ci_unit: null,
        notes: { sd: "one rating: the sample SD needs two", ci: "one rating: no interval" },
      },
    ]);
    expect(summariesToCsv(summarize(single))).toBe(
      'arm,dimension,n,mean,sd,ci_low,ci_high,ci_level,resamples,ci_unit\n"a,b",quality,1,2,,,,,,\n',
    );
    const csv = summariesToCsv(summarize(ratings)).trimEnd().split("\n");
    expect(csv).toHaveLength(5);
    expect(csv[1]).toMatch(
      /^No FT,quality,75,2\.8,0\.986393923832\d+,2\.\d+,3\.\d+,0\.95,2000,images$/,
    );
  });
});
