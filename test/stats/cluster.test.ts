/** The image (cluster) bootstrap, the two-way bootstrap and the image-level permutation test. */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import {
  bootstrapMeanCi,
  clusterBootstrapMeanCi,
  clusterPermutationTest,
  clusterScores,
  imageTotals,
  meanAndSd,
} from "../../src/core/stats/index.js";

/** `images` images, each rated `raters` times with the same score (spread 1–4 over images). */
function identicalRatings(images: number, raters: number) {
  return Array.from({ length: images }, (_, i) =>
    Array.from({ length: raters }, (_, r) => ({
      item: `img${i}`,
      rater: `r${r}`,
      score: 1 + (i % 4),
    })),
  ).flat();
}

describe("image bootstrap", () => {
  it("is as wide as the ratings bootstrap when each image has one rating", () => {
    const ratings = identicalRatings(400, 1);
    const clustered = clusterBootstrapMeanCi(clusterScores(ratings), seededRandom(1), {
      resamples: 20_000,
    });
    const independent = bootstrapMeanCi(
      ratings.map((r) => r.score),
      seededRandom(1),
      { resamples: 20_000 },
    );
    const ratio = (clustered.high - clustered.low) / (independent.high - independent.low);
    expect(ratio).toBeGreaterThan(0.95);
    expect(ratio).toBeLessThan(1.05);
    expect(clustered.unit).toBe("images");
  });

  it("is twice as wide as the ratings bootstrap when four raters always agree", () => {
    // 4 identical ratings per image carry the information of one: the SE of the mean is σ/√n
    // over n images, not σ/√(4n) over the ratings.
    const ratings = identicalRatings(200, 4);
    const clustered = clusterBootstrapMeanCi(clusterScores(ratings), seededRandom(2), {
      resamples: 20_000,
    });
    const independent = bootstrapMeanCi(
      ratings.map((r) => r.score),
      seededRandom(2),
      { resamples: 20_000 },
    );
    const ratio = (clustered.high - clustered.low) / (independent.high - independent.low);
    expect(ratio).toBeGreaterThan(1.9);
    expect(ratio).toBeLessThan(2.1);
    // And it is close to mean ± 1.96·σ̂/√n over the image means (plug-in σ̂).
    const imageMeans = Array.from({ length: 200 }, (_, i) => 1 + (i % 4));
    const { mean, sd } = meanAndSd(imageMeans);
    const halfWidth = (1.96 * (sd as number) * Math.sqrt(199 / 200)) / Math.sqrt(200);
    expect((clustered.high - clustered.low) / (2 * halfWidth)).toBeCloseTo(1, 1);
    expect((clustered.low + clustered.high) / 2).toBeCloseTo(mean, 2);
  });

  it("is deterministic for a seed, whatever the order of the ratings", () => {
    // Images with 1 to 4 ratings of varied scores, so that resampled means rarely tie.
    const ratings = identicalRatings(30, 4)
      .filter((_, i) => i % 4 <= Math.floor(i / 4) % 4)
      .map((r, i) => ({ ...r, score: 1 + ((i * i + 3 * i) % 4) }));
    const a = clusterBootstrapMeanCi(clusterScores(ratings), seededRandom(5));
    const b = clusterBootstrapMeanCi(clusterScores([...ratings].reverse()), seededRandom(5));
    const c = clusterBootstrapMeanCi(clusterScores(ratings), seededRandom(6));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it("widens further with raters resampled when raters differ in leniency", () => {
    // Every image gets 1 + rater offset: raters 0..3 give 1, 2, 3, 4 to every image. Images do
    // not vary, so resampling images alone gives a zero-width interval; raters do vary.
    const ratings = Array.from({ length: 50 }, (_, i) =>
      [0, 1, 2, 3].map((r) => ({ item: `img${i}`, rater: `r${r}`, score: 1 + r })),
    ).flat();
    const data = clusterScores(ratings);
    const images = clusterBootstrapMeanCi(data, seededRandom(3));
    const twoWay = clusterBootstrapMeanCi(data, seededRandom(3), { unit: "images-raters" });
    expect(images.high - images.low).toBe(0);
    expect(twoWay.high - twoWay.low).toBeGreaterThan(1);
    expect(twoWay.unit).toBe("images-raters");
  });

  it("rejects bad options", () => {
    const data = clusterScores(identicalRatings(3, 2));
    expect(() => clusterBootstrapMeanCi(data, seededRandom(1), { resamples: 0 })).toThrow(
      /resamples/,
    );
    expect(() => clusterBootstrapMeanCi(data, seededRandom(1), { level: 1 })).toThrow(/level/);
    expect(() => clusterBootstrapMeanCi(clusterScores([]), seededRandom(1))).toThrow(/no ratings/);
  });
});

describe("image-level permutation test", () => {
  it("matches the exact permutation distribution of a small case", () => {
    // Images (sum, count): first {8/2, 7/2}, second {2/2, 3/2}. The 6 relabellings of 4 images
    // into 2 + 2: |difference| ≥ 2.5 only for the observed one and its mirror → exact p = 2/6.
    const first = [
      { sum: 8, count: 2 },
      { sum: 7, count: 2 },
    ];
    const second = [
      { sum: 2, count: 2 },
      { sum: 3, count: 2 },
    ];
    const result = clusterPermutationTest(first, second, seededRandom(9), 40_000);
    expect(result.meanDifference).toBe(2.5);
    expect(Math.abs(result.p - 1 / 3)).toBeLessThan(0.01);
    expect(result).toMatchObject({ images1: 2, images2: 2, strata: 1, rounds: 40_000 });
  });

  it("moves images only within their stratum", () => {
    // Each stratum holds one arm only: no relabelling changes anything, so p = 1.
    const first = [
      { sum: 4, count: 1, stratum: "1" },
      { sum: 4, count: 1, stratum: "1" },
    ];
    const second = [
      { sum: 1, count: 1, stratum: "2" },
      { sum: 1, count: 1, stratum: "2" },
    ];
    const result = clusterPermutationTest(first, second, seededRandom(1), 999);
    expect(result.p).toBe(1);
    expect(result.strata).toBe(2);
    // Unstratified, the same images give a small p (2 of 6 labellings as extreme).
    const free = clusterPermutationTest(
      first.map(({ sum, count }) => ({ sum, count })),
      second.map(({ sum, count }) => ({ sum, count })),
      seededRandom(1),
      20_000,
    );
    expect(Math.abs(free.p - 1 / 3)).toBeLessThan(0.015);
  });

  it("sums each image's ratings and keeps its stratum", () => {
    const totals = imageTotals(
      [
        { item: "a", score: 3 },
        { item: "b", score: 1 },
        { item: "a", score: 4 },
      ],
      (item) => (item === "a" ? "1" : "2"),
    );
    expect(totals).toEqual([
      { sum: 7, count: 2, stratum: "1" },
      { sum: 1, count: 1, stratum: "2" },
    ]);
  });

  it("rejects empty arms and bad rounds", () => {
    const one = [{ sum: 1, count: 1 }];
    expect(() => clusterPermutationTest([], one, seededRandom(1))).toThrow(/at least one/);
    expect(() => clusterPermutationTest(one, one, seededRandom(1), 0)).toThrow(/rounds/);
    expect(() => clusterPermutationTest([{ sum: 1, count: 0 }], one, seededRandom(1))).toThrow(
      /rating/,
    );
  });
});
