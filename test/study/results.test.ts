/**
 * Study results with the paper's design: surveys in the results, agreement per survey and
 * pooled, image-level uncertainty, and a table that names every statistic the JSON carries.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/random.js";
import { StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import { formatResults, RESULT_LABELS, resultsJson } from "../../src/core/study/report.js";
import { holm, ratingsFromRows, resultsReport } from "../../src/core/study/results.js";
import { PAPER_RATERS, simulateRatings } from "../../src/core/study/simulate.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { generation } from "./fixtures.js";

const ARMS = ["base", "ft-no-tags", "ft-tags"];
const CONCEPTS = ["a lighthouse", "a red fox", "an old map", "a teapot", "a city at night"];
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function paperLikeRatings(seed: number) {
  const plan = makeStudyPlan({
    concepts: CONCEPTS,
    promptsPerConcept: 2,
    arms: ARMS,
    surveys: 2,
    seed,
  });
  const ratings = simulateRatings(
    plan,
    PAPER_RATERS,
    {
      latent: {
        base: { quality: 2.4, faithfulness: 3.2 },
        "ft-no-tags": { quality: 2.8, faithfulness: 2.6 },
        "ft-tags": { quality: 3.2, faithfulness: 2.7 },
      },
      imageSd: 0.7,
      noiseSd: 0.5,
    },
    seededRandom(seed),
  );
  return { plan, ratings };
}

describe("results with surveys", () => {
  const { ratings } = paperLikeRatings(11);
  const report = resultsReport(ratings, { arms: ARMS, resamples: 400, permutationRounds: 499 });

  it("reports each survey with its raters, and Fleiss' κ where its raters are complete", () => {
    expect(report.surveys.map((s) => [s.survey, s.images, s.raters])).toEqual([
      ["1", 15, ["rater1", "rater2", "rater3", "rater4"]],
      ["2", 15, ["rater3", "rater4", "rater5", "rater6"]],
    ]);
    for (const survey of report.surveys) {
      const quality = survey.agreement.dimensions.quality;
      expect(quality?.fleiss_kappa).not.toBeNull();
      expect(quality?.fleiss_complete_block).toEqual({ n_items: 15, n_raters: 4 });
      expect(quality?.ratings_per_item).toEqual({ min: 4, mean: 4, max: 4 });
    }
    // Pooled: six raters, none rated every image — Fleiss' κ has no complete block, α does not
    // need one.
    const pooled = report.agreement.dimensions.quality;
    expect(pooled?.n_raters).toBe(6);
    expect(pooled?.fleiss_kappa).toBeNull();
    expect(pooled?.fleiss_complete_block).toEqual({ n_items: 0, n_raters: 6 });
    expect(pooled?.krippendorff_alpha.ordinal).not.toBeNull();
    expect(report.raterIds).toEqual(["rater1", "rater2", "rater3", "rater4", "rater5", "rater6"]);
  });

  it("uses image-level intervals and a permutation test within surveys", () => {
    expect(report.uncertainty).toEqual({
      unit: "images",
      resamples: 400,
      level: 0.95,
      seed: 1,
      permutationRounds: 499,
      strata: "surveys",
    });
    for (const s of report.summaries) expect(s.ci?.unit).toBe("images");
    const wide = resultsReport(ratings, { arms: ARMS, resamples: 400, permutationRounds: 9 });
    const narrow = resultsReport(ratings, {
      arms: ARMS,
      resamples: 400,
      permutationRounds: 9,
      unit: "ratings",
    });
    // Four raters per image: the image bootstrap is clearly wider than the ratings one.
    const width = (r: typeof wide, i: number) =>
      (r.summaries[i]?.ci?.high as number) - (r.summaries[i]?.ci?.low as number);
    let ratio = 0;
    for (let i = 0; i < wide.summaries.length; i++) {
      expect(width(wide, i)).toBeGreaterThan(width(narrow, i));
      ratio += width(wide, i) / width(narrow, i) / wide.summaries.length;
    }
    expect(ratio).toBeGreaterThan(1.3);
    const comparison = report.comparisons.find(
      (c) => c.dimension === "faithfulness" && c.first === "base" && c.second === "ft-no-tags",
    );
    expect(comparison?.permutation).toMatchObject({ images1: 10, images2: 10, strata: 2 });
    expect(comparison?.permutation.p).toBeLessThan(0.05);
    // Ten images per arm, not forty independent ratings: every image-level p is larger than
    // Mann–Whitney's on the same data.
    expect(report.comparisons).toHaveLength(6);
    for (const c of report.comparisons) {
      expect(c.permutation.p).toBeGreaterThan(c.mannWhitney.p as number);
    }
    // The same seed gives the same report.
    expect(resultsReport(ratings, { arms: ARMS, resamples: 400, permutationRounds: 499 })).toEqual(
      report,
    );
  });

  it("prints every statistic of the JSON in the table, by name", () => {
    const json = resultsJson(report);
    const table = formatResults(report, "Study test");
    const labels = RESULT_LABELS as Record<string, string>;
    const missing: string[] = [];
    let statistics = 0;
    const walk = (value: unknown, path: string[]) => {
      if (typeof value === "number" || value === null) {
        statistics++;
        // The leaf's own name, and the names of the statistics it belongs to (e.g. Krippendorff's
        // α for ...krippendorff_alpha.ordinal), must all be printed.
        const key = path.at(-1) as string;
        if (labels[key] === undefined) missing.push(`${path.join(".")}: no label`);
        for (const part of path) {
          const label = labels[part];
          if (label !== undefined && !table.includes(label)) {
            missing.push(`${path.join(".")}: "${label}" not in the table`);
          }
        }
      } else if (Array.isArray(value)) {
        for (const [i, entry] of value.entries()) walk(entry, [...path, String(i)]);
      } else if (typeof value === "object") {
        for (const [key, entry] of Object.entries(value as object)) {
          // Reasons (text) are printed next to the n/a they explain; the study (null here: no
          // study) is the table's title.
          if (key === "notes" || (path.length === 0 && key === "study")) continue;
          walk(entry, [...path, key]);
        }
      }
    };
    walk(json, []);
    expect(missing).toEqual([]);
    expect(statistics).toBeGreaterThan(300);
    // And the things the issue names explicitly.
    for (const text of [
      "weighted Cohen's κ (the paper's statistic",
      "Cohen's κ unweighted",
      "Fleiss' κ",
      "complete block: 15 items rated by all 4 raters",
      "complete block: 0 items rated by all 6 raters",
      "Krippendorff's α",
      "ratings per item: min 4, mean 4.00, max 4",
      "Survey 1: 15 images",
      "raters in more than one survey: rater3, rater4",
      "image-level permutation test",
      "Mann–Whitney U (secondary: treats every rating as independent",
      "bootstrap over images",
    ]) {
      expect(table).toContain(text);
    }
  });

  it("offers the two-way (images × raters) bootstrap and says so in the table", () => {
    const twoWay = resultsReport(ratings, {
      arms: ARMS,
      resamples: 200,
      permutationRounds: 9,
      unit: "images-raters",
    });
    expect(twoWay.uncertainty.unit).toBe("images-raters");
    for (const s of twoWay.summaries) {
      expect(s.ci?.unit).toBe("images-raters");
      expect(s.ci?.low).toBeLessThanOrEqual(s.mean);
      expect(s.ci?.high).toBeGreaterThanOrEqual(s.mean);
    }
    expect(formatResults(twoWay, "t")).toContain("two-way bootstrap over images and raters");
  });

  it("keeps the surveys of different studies apart when all votes are pooled", () => {
    const row = { rater: "r", dimension: "quality" as const, score: 3, at: "t", arm: "base" };
    const pooled = ratingsFromRows([
      { ...row, generationId: "g1", studyId: "a", survey: "1" },
      { ...row, generationId: "g2", studyId: "b", survey: "1" },
      { ...row, generationId: "g3", studyId: null, survey: null },
      { ...row, generationId: "g4", studyId: "c", survey: null, arm: null },
    ]);
    expect(pooled.map((r) => [r.item, r.survey])).toEqual([
      ["g1", "a/1"],
      ["g2", "b/1"],
      ["g3", undefined],
    ]);
  });

  it("adjusts p-values with Holm's step-down method", () => {
    // p = 0.01, 0.04, 0.03 → sorted 0.01·3, 0.03·2, 0.04·1 → 0.03, 0.06, 0.06 (monotone).
    const adjusted = holm([0.01, 0.04, null, 0.03]);
    expect(adjusted[0]).toBeCloseTo(0.03, 12);
    expect(adjusted[1]).toBeCloseTo(0.06, 12);
    expect(adjusted[2]).toBeNull();
    expect(adjusted[3]).toBeCloseTo(0.06, 12);
  });
});

describe("a closed batch study's results", () => {
  it("find each image's survey (plan item, else concept + arm + seed) and carry the design", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "imagine-results-"));
    dirs.push(dataDir);
    const manager = new StudyManager({ dataDir });
    const votes = await memoryVoteStore();
    const { plan, ratings } = paperLikeRatings(5);
    const record = await manager.start({ mode: "batch", name: "Paper", arms: ARMS, plan });
    // Half the generations carry their plan item; the other half are found by their content.
    for (const [index, item] of plan.items.entries()) {
      await votes.saveGeneration({
        ...generation(item.id, item.arm, record.id),
        subject: item.concept,
        seed: item.seed,
        ...(index % 2 === 0 ? { studyItem: item.id } : {}),
      });
    }
    for (const rating of ratings) {
      await votes.castVote({
        generationId: rating.item,
        rater: rating.rater,
        dimension: rating.dimension as "quality" | "faithfulness",
        score: rating.score,
      });
    }
    await manager.stop(record.id);
    const results = await manager.results(record.id, votes, { resamples: 200 });
    expect(results.surveys.map((s) => [s.survey, s.images, s.raters.length])).toEqual([
      ["1", 15, 4],
      ["2", 15, 4],
    ]);
    const json = resultsJson(results);
    expect(json.study).toMatchObject({ id: record.id, name: "Paper", status: "closed" });
    expect(json.design).toEqual({
      arms: ARMS,
      concepts: CONCEPTS,
      prompts_per_concept: 2,
      surveys: [
        { survey: "1", images: 15, raters: ["rater1", "rater2", "rater3", "rater4"] },
        { survey: "2", images: 15, raters: ["rater3", "rater4", "rater5", "rater6"] },
      ],
      raters: ["rater1", "rater2", "rater3", "rater4", "rater5", "rater6"],
    });
    expect(formatResults(results, "Study Paper")).toContain(
      `Design: 3 arms (base, ft-no-tags, ft-tags); 5 concepts (${CONCEPTS.join(", ")}) × 2 prompts per concept; 2 surveys`,
    );
  });
});
