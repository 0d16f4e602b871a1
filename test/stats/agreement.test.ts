/**
 * Agreement statistics against published worked examples. Each reference names its source;
 * the values are the ones printed there, compared at the precision printed.
 */
import { describe, expect, it } from "vitest";
import {
  agreementReport,
  codeRatings,
  cohenKappa,
  cohenKappaFromTable,
  disagreementWeights,
  fleissKappa,
  fleissKappaFromCounts,
  krippendorffAlpha,
  pairwiseCohen,
  percentAgreement,
  type Rating,
} from "../../src/core/stats/index.js";

const N = null;

/** Observers in rows, units in columns, null for a missing value → ratings. */
function fromMatrix(matrix: readonly (readonly (number | null)[])[]): Rating[] {
  return matrix.flatMap((row, coder) =>
    row.flatMap((score, unit) =>
      score === null ? [] : [{ item: `u${unit + 1}`, rater: `coder${coder + 1}`, score }],
    ),
  );
}

const repeat = (value: number, times: number): number[] => Array<number>(times).fill(value);

describe("Krippendorff's alpha", () => {
  // Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. University of
  // Pennsylvania, ScholarlyCommons (asc_papers/43), section C "Nominal data, any number of
  // observers, missing data" (α = .743) and section D, other metrics: ordinal α = .815,
  // interval α = .849. Observers A–D, 12 units, values 1–5; unit 12 has a single value.
  // (The same data is irr's kripp.alpha example, "the C data from Krippendorff".)
  const krippendorff2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
  ];
  const coded = codeRatings(fromMatrix(krippendorff2011), [1, 2, 3, 4, 5]);

  it.each([
    ["nominal", 0.743],
    ["ordinal", 0.815],
    ["interval", 0.849],
  ] as const)("reproduces Krippendorff (2011): %s α = %s", (metric, published) => {
    const alpha = krippendorffAlpha(coded, metric);
    expect(alpha.value).not.toBeNull();
    expect(alpha.value as number).toBeCloseTo(published, 3);
  });

  it("reproduces Wikipedia's computational example: nominal α = 0.691", () => {
    // Wikipedia, "Krippendorff's alpha", section "A computational example": 3 coders,
    // 15 units, values 1–4, with missing values; α_nominal = 0.691.
    const wikipedia = [
      [N, N, N, N, N, 3, 4, 1, 2, 1, 1, 3, 3, N, 3],
      [1, N, 2, 1, 3, 3, 4, 3, N, N, N, N, N, N, N],
      [N, N, 2, 1, 3, 4, 4, N, 2, 1, 1, 3, 3, N, 4],
    ];
    const alpha = krippendorffAlpha(codeRatings(fromMatrix(wikipedia)), "nominal");
    expect(alpha.value as number).toBeCloseTo(0.691, 3);
  });

  it("is null with a reason when every pairable rating is the same score", () => {
    const same = codeRatings(
      fromMatrix([
        [2, 2, 2, N],
        [2, 2, N, 3],
      ]),
    );
    for (const metric of ["nominal", "ordinal", "interval"] as const) {
      const alpha = krippendorffAlpha(same, metric);
      expect(alpha.value).toBeNull();
      expect(alpha.reason).toMatch(/no expected disagreement/);
    }
  });

  it("is null with a reason when no item has two ratings", () => {
    const alpha = krippendorffAlpha(
      codeRatings(
        fromMatrix([
          [1, N],
          [N, 2],
        ]),
      ),
      "interval",
    );
    expect(alpha).toEqual({ value: null, reason: "no item has two or more ratings" });
  });

  it("does not depend on unused declared categories", () => {
    const ratings = fromMatrix(krippendorff2011);
    const wide = codeRatings(ratings, [0, 1, 2, 3, 4, 5, 6]);
    for (const metric of ["nominal", "ordinal", "interval"] as const) {
      expect(krippendorffAlpha(wide, metric).value).toBeCloseTo(
        krippendorffAlpha(coded, metric).value as number,
        12,
      );
    }
  });
});

describe("Fleiss' kappa", () => {
  // Fleiss (1971) as worked on Wikipedia, "Fleiss' kappa", section "Worked example": 14 raters,
  // 10 subjects, 5 categories; P̄ = 0.378, P̄e = 0.213, κ = 0.210.
  const counts = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
  ];

  it("reproduces the worked example from counts: κ = 0.210", () => {
    expect(fleissKappaFromCounts(counts).value as number).toBeCloseTo(0.21, 3);
  });

  it("reproduces it from raw ratings where every rater rated every item", () => {
    const ratings: Rating[] = counts.flatMap((row, item) => {
      const scores = row.flatMap((count, c) => repeat(c + 1, count));
      return scores.map((score, rater) => ({ item: `s${item}`, rater: `r${rater}`, score }));
    });
    const result = fleissKappa(codeRatings(ratings, [1, 2, 3, 4, 5]));
    expect(result.nItems).toBe(10);
    expect(result.value as number).toBeCloseTo(0.21, 3);
  });

  it("uses only the items that every rater rated", () => {
    const ratings = fromMatrix([
      [1, 2, 3, 4, 1],
      [1, 2, 3, 3, N],
      [1, 3, 3, 4, 2],
    ]);
    const result = fleissKappa(codeRatings(ratings));
    expect(result.nItems).toBe(4);
    const complete = [
      [3, 0, 0, 0],
      [0, 2, 1, 0],
      [0, 0, 3, 0],
      [0, 0, 1, 2],
    ];
    expect(result.value).toBeCloseTo(fleissKappaFromCounts(complete).value as number, 12);
  });

  it("is null with a reason without a complete block or with a single score", () => {
    const incomplete = fleissKappa(
      codeRatings(
        fromMatrix([
          [1, N],
          [N, 2],
          [1, 2],
        ]),
      ),
    );
    expect(incomplete.value).toBeNull();
    expect(incomplete.reason).toMatch(/no item was rated by all 3 raters/);
    const constant = fleissKappa(
      codeRatings(
        fromMatrix([
          [3, 3],
          [3, 3],
        ]),
      ),
    );
    expect(constant.value).toBeNull();
    expect(constant.reason).toMatch(/same score/);
  });
});

describe("Cohen's kappa", () => {
  const y1 = [...repeat(0, 46), ...repeat(1, 44), ...repeat(2, 10)];

  it("reproduces scikit-learn's weighting example: 0.9315, linear 0.9412, quadratic 0.9541", () => {
    // scikit-learn, sklearn/metrics/tests/test_classification.py, test_cohen_kappa
    // ("Weighting example: none, linear, quadratic"), labels 0–2.
    const y2 = [...repeat(0, 50), ...repeat(1, 40), ...repeat(2, 10)];
    expect(cohenKappa(y1, y2, "unweighted", [0, 1, 2]).value as number).toBeCloseTo(0.9315, 4);
    expect(cohenKappa(y1, y2, "linear", [0, 1, 2]).value as number).toBeCloseTo(0.9412, 4);
    expect(cohenKappa(y1, y2, "quadratic", [0, 1, 2]).value as number).toBeCloseTo(0.9541, 4);
  });

  it("reproduces Artstein & Poesio (2008), Table 4: κ = 0.8013", () => {
    // Artstein, R. & Poesio, M. (2008), Computational Linguistics 34(4), Table 4, as used in
    // scikit-learn's test_cohen_kappa ("Multiclass example").
    const y2 = [...repeat(0, 52), ...repeat(1, 32), ...repeat(2, 16)];
    expect(cohenKappa(y1, y2, "unweighted", [0, 1, 2]).value as number).toBeCloseTo(0.8013, 4);
  });

  it("reproduces scikit-learn's binary example: κ = 0.348", () => {
    const a = [...repeat(0, 40), ...repeat(1, 60)];
    const b = [...repeat(0, 20), ...repeat(1, 20), ...repeat(0, 10), ...repeat(1, 50)];
    expect(cohenKappa(a, b, "unweighted", [0, 1]).value as number).toBeCloseTo(0.348, 3);
  });

  it("weighs with the declared 1–4 scale, not with the values a pair happened to use", () => {
    // a used 1, 2, 4; b used 1, 2, 4. On the declared scale, 2 and 4 are two steps apart
    // (linear distance 2/3), not one. By hand: observed Σd·n = 4/3, expected Σd·rᵢ·cⱼ = 22/3,
    // κ = 1 − 4·(4/3)/(22/3) = 3/11. Treating {1, 2, 4} as three adjacent categories gives 3/7.
    const a = [1, 2, 4, 4];
    const b = [1, 4, 2, 4];
    expect(cohenKappa(a, b, "linear").value).toBeCloseTo(3 / 11, 12);
    expect(cohenKappa(a, b, "linear").value).not.toBeCloseTo(3 / 7, 3);
  });

  it("a pair that only used 1 and 2 still gets linear weights on the 1–4 scale", () => {
    const weights = disagreementWeights([1, 2, 3, 4], "linear");
    expect(weights[1]).toBeCloseTo(1 / 3, 12); // d(1, 2)
    expect(disagreementWeights([1, 2, 3, 4], "quadratic")[1]).toBeCloseTo(1 / 9, 12);
    // Table over 1–4 with only categories 1 and 2 used: κ on the full scale.
    const table = [3, 1, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(cohenKappaFromTable(table, weights).value).toBeCloseTo(0.5, 12);
    expect(() => cohenKappa([1, 5], [1, 2])).toThrow(/not one of the categories 1,2,3,4/);
  });

  it("is null with a reason when both raters gave one and the same score throughout", () => {
    for (const weighting of ["unweighted", "linear", "quadratic"] as const) {
      const kappa = cohenKappa([3, 3, 3], [3, 3, 3], weighting);
      expect(kappa.value).toBeNull();
      expect(kappa.reason).toMatch(/no expected disagreement/);
    }
    // Constant but different scores are defined: no agreement beyond chance (κ = 0).
    expect(cohenKappa([3, 3, 3], [2, 2, 2]).value).toBe(0);
  });
});

describe("pairwise Cohen's kappa with missing ratings", () => {
  it("uses each pair's shared items and skips pairs below minSharedItems", () => {
    const ratings = fromMatrix([
      [1, 2, 3, 4, 1, N],
      [1, 2, 3, 3, N, 2],
      [N, N, N, N, 1, 2],
    ]);
    const pairs = pairwiseCohen(codeRatings(ratings), 2);
    expect(pairs.map((p) => [p.raters, p.nItems])).toEqual(
      [
        [["coder1", "coder2"], 4],
        [["coder2", "coder3"], 1],
      ].filter(([, n]) => (n as number) >= 2),
    );
    expect(pairs[0]?.unweighted.value).toBeCloseTo(
      cohenKappa([1, 2, 3, 4], [1, 2, 3, 3]).value as number,
      12,
    );
    expect(pairwiseCohen(codeRatings(ratings), 1)).toHaveLength(3);
  });

  it.each(["items", "merge"] as const)(
    "matches a direct computation on random incomplete data (%s)",
    (strategy) => {
      let state = 7;
      const next = () => {
        state = (state * 1103515245 + 12345) % 2 ** 31;
        return state / 2 ** 31;
      };
      const ratings: Rating[] = [];
      for (let item = 0; item < 60; item++) {
        for (let rater = 0; rater < 8; rater++) {
          if (next() < 0.6)
            ratings.push({
              item: `i${item}`,
              rater: `r${rater}`,
              score: 1 + Math.floor(next() * 4),
            });
        }
      }
      const pairs = pairwiseCohen(codeRatings(ratings), 2, strategy);
      expect(pairs).toHaveLength(28);
      for (const pair of pairs) {
        const [a, b] = pair.raters;
        const byItem = (rater: string) =>
          new Map(ratings.filter((r) => r.rater === rater).map((r) => [r.item, r.score]));
        const first = byItem(a);
        const second = byItem(b);
        const shared = [...first.keys()].filter((item) => second.has(item));
        expect(pair.nItems).toBe(shared.length);
        for (const weighting of ["unweighted", "linear", "quadratic"] as const) {
          const direct = cohenKappa(
            shared.map((item) => first.get(item) as number),
            shared.map((item) => second.get(item) as number),
            weighting,
          );
          expect(pair[weighting].value).toBeCloseTo(direct.value as number, 12);
        }
      }
    },
  );
});

describe("percent agreement", () => {
  it("is the mean over items of the share of agreeing rating pairs (Fleiss' P̄), not pooled pairs", () => {
    // Item 1: (1,1,2) → 1 of 3 pairs agree; item 2: (3,3) → 1 of 1; item 3: one rating, no pair.
    // Mean over items: (1/3 + 1) / 2 = 2/3. Pairs pooled across items would give 2/4 instead.
    const ratings = fromMatrix([
      [1, 3, 4],
      [1, 3, N],
      [2, N, N],
    ]);
    expect(percentAgreement(codeRatings(ratings)).value).toBeCloseTo(2 / 3, 12);
  });

  it("matches the hand computation on a larger design with missing ratings", () => {
    // Five raters, four items, computed by hand per item (ordered pairs):
    //   u1 scores 1,1,1,2   → agreeing ordered pairs 3·2 + 0 = 6 of 4·3 = 12 → 1/2
    //   u2 scores 4,4       → 2 of 2 → 1
    //   u3 scores 2,3,4     → 0 of 6 → 0
    //   u4 scores 3,3,3,3,2 → 12 of 20 → 3/5
    // P̄ = (1/2 + 1 + 0 + 3/5) / 4 = 0.525 (pooled unordered pairs: (3 + 1 + 0 + 6) / (6 + 1 + 3 + 10) = 0.5).
    const ratings = fromMatrix([
      [1, 4, 2, 3],
      [1, 4, 3, 3],
      [1, N, 4, 3],
      [2, N, N, 3],
      [N, N, N, 2],
    ]);
    expect(percentAgreement(codeRatings(ratings)).value).toBeCloseTo(0.525, 12);
  });

  it("is null when no item has two ratings", () => {
    expect(
      percentAgreement(
        codeRatings(
          fromMatrix([
            [1, N],
            [N, 1],
          ]),
        ),
      ).value,
    ).toBeNull();
  });
});

describe("agreementReport", () => {
  it("has the documented JSON shape per dimension, with notes for nulls", () => {
    const ratings: Rating[] = [
      ...fromMatrix([
        [1, 2, 3, 4],
        [1, 2, 4, 4],
        [2, 2, 3, 4],
      ]).map((r) => ({ ...r, dimension: "quality" })),
      ...fromMatrix([
        [3, 3, N],
        [3, N, 3],
      ]).map((r) => ({ ...r, dimension: "faithfulness" })),
    ];
    const report = agreementReport(ratings);
    expect(Object.keys(report.dimensions)).toEqual(["quality", "faithfulness"]);
    const quality = report.dimensions.quality;
    expect(Object.keys(quality ?? {})).toEqual([
      "n_items",
      "n_raters",
      "n_ratings",
      "ratings_per_item",
      "n_pairable_items",
      "percent_agreement",
      "cohen",
      "fleiss_kappa",
      "fleiss_complete_block",
      "krippendorff_alpha",
      "likert",
    ]);
    expect(quality?.cohen.pairs).toHaveLength(3);
    expect(Object.keys(quality?.cohen.pairs[0] ?? {})).toEqual([
      "raters",
      "n_items",
      "unweighted",
      "linear",
      "quadratic",
    ]);
    const meanLinear =
      (quality?.cohen.pairs ?? []).reduce((sum, p) => sum + (p.linear as number), 0) / 3;
    expect(quality?.cohen.linear).toBeCloseTo(meanLinear, 12);
    expect(quality?.fleiss_kappa).not.toBeNull();
    expect(quality?.likert.mean).toBeCloseTo(32 / 12, 12);

    expect(quality?.ratings_per_item).toEqual({ min: 3, mean: 3, max: 3 });
    expect(quality?.fleiss_complete_block).toEqual({ n_items: 4, n_raters: 3 });

    const faithfulness = report.dimensions.faithfulness;
    // Items u1 (3, 3), u2 (3), u3 (3): one complete item, one pairable item.
    expect(faithfulness?.ratings_per_item).toEqual({ min: 1, mean: 4 / 3, max: 2 });
    expect(faithfulness?.n_pairable_items).toBe(1);
    expect(faithfulness?.fleiss_complete_block).toEqual({ n_items: 1, n_raters: 2 });
    // Only one shared item between the two raters (< 2): no pair, every κ null.
    expect(faithfulness?.cohen).toEqual({
      unweighted: null,
      linear: null,
      quadratic: null,
      pairs: [],
    });
    expect(faithfulness?.notes?.["cohen.linear"]).toMatch(
      /no pair of raters shares at least 2 items/,
    );
    expect(faithfulness?.krippendorff_alpha.nominal).toBeNull();
    expect(faithfulness?.notes?.["krippendorff_alpha.nominal"]).toMatch(/no expected disagreement/);
    expect(faithfulness?.fleiss_kappa).toBeNull();
    expect(faithfulness?.notes?.fleiss_kappa).toMatch(/every rating is the same score/);
    expect(JSON.stringify(report)).not.toMatch(/NaN/);
  });

  it("puts ratings without a dimension under 'all' and rejects duplicates", () => {
    const report = agreementReport(
      fromMatrix([
        [1, 2],
        [1, 3],
      ]),
    );
    expect(Object.keys(report.dimensions)).toEqual(["all"]);
    expect(() =>
      agreementReport([
        { item: "a", rater: "x", score: 1 },
        { item: "a", rater: "x", score: 2 },
      ]),
    ).toThrow(/rater x rated item a twice/);
  });
});
