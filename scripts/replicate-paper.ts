/**
 * Replicates the paper's study design end to end against simulated raters with known arm
 * effects, and shows that the results pipeline recovers them.
 *
 * Design: 10 concepts × 5 prompts × 3 arms = 150 images, a batch plan in two surveys of 75;
 * survey 1 rated by rater1–rater4, survey 2 by rater3–rater6 (two raters took both). The
 * study runs through the real StudyManager and a vote store: each plan item becomes a stored
 * generation (with its plan item id), each simulated rating a cast vote; the study is closed
 * and `manager.results` computes what `study results` prints, which this script prints too.
 *
 * Raters: latent = μ(arm, dimension) + image effect (SD 0.8) + noise (SD 0.6), rounded to 1–4;
 * μ is set so that each arm's expected mean score is the paper's Table 1 value. The script
 * then compares the recovered means and arm differences with those true values, for this one
 * study and on average over `replications` more simulated studies (bias, CI coverage, and how
 * often the image-level permutation test finds each difference).
 *
 *   npx tsx scripts/replicate-paper.ts [seed=1] [replications=200]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRandom } from "../src/core/random.js";
import { StudyManager } from "../src/core/study/manager.js";
import { makeStudyPlan, type PlanItem } from "../src/core/study/plan.js";
import { formatResults } from "../src/core/study/report.js";
import { resultsReport } from "../src/core/study/results.js";
import {
  expectedScore,
  latentForMean,
  PAPER_RATERS,
  type SimulationModel,
  simulateRatings,
} from "../src/core/study/simulate.js";
import type { Dimension, Generation } from "../src/core/types.js";
import { openVoteStore } from "../src/core/votes/index.js";

const seed = Number(process.argv[2] ?? 1);
const replications = Number(process.argv[3] ?? 200);
if (!Number.isSafeInteger(seed)) {
  throw new Error(`seed must be a whole number, got ${process.argv[2]}`);
}
if (!Number.isInteger(replications) || replications < 0) {
  throw new Error(`replications must be a whole number ≥ 0, got ${process.argv[3]}`);
}

const ARMS = ["base", "ft-no-tags", "ft-tags"];
const LABELS: Record<string, string> = {
  base: "No FT",
  "ft-no-tags": "FT no tags",
  "ft-tags": "FT with tags",
};
/** The paper's Table 1 means: the truth the simulated raters are built to have. */
const PAPER_MEANS: Record<Dimension, Record<string, number>> = {
  quality: { base: 2.81, "ft-no-tags": 2.96, "ft-tags": 3.04 },
  faithfulness: { base: 3.02, "ft-no-tags": 2.72, "ft-tags": 2.77 },
};
const IMAGE_SD = 0.8;
const NOISE_SD = 0.6;
const CONCEPTS = [
  "a lighthouse",
  "a red fox",
  "an old map",
  "a teapot",
  "a city at night",
  "a mountain lake",
  "a vintage car",
  "a bowl of fruit",
  "a knight",
  "a spaceship",
];

const sd = Math.hypot(IMAGE_SD, NOISE_SD);
const model: SimulationModel = {
  latent: Object.fromEntries(
    ARMS.map((arm) => [
      arm,
      {
        quality: latentForMean(PAPER_MEANS.quality[arm] as number, sd),
        faithfulness: latentForMean(PAPER_MEANS.faithfulness[arm] as number, sd),
      },
    ]),
  ),
  imageSd: IMAGE_SD,
  noiseSd: NOISE_SD,
};

const dataDir = mkdtempSync(join(tmpdir(), "imagine-replicate-"));
try {
  const manager = new StudyManager({ dataDir });
  const votes = await openVoteStore("memory://", { dataDir });
  const plan = makeStudyPlan({
    concepts: CONCEPTS,
    promptsPerConcept: 5,
    arms: ARMS,
    surveys: 2,
    seed,
  });
  const study = await manager.start({ mode: "batch", name: "Paper replication", arms: ARMS, plan });
  for (const item of plan.items) await votes.saveGeneration(generationFor(item, study.id));
  const ratings = simulateRatings(plan, PAPER_RATERS, model, seededRandom(seed));
  for (const rating of ratings) {
    await votes.castVote({
      generationId: `${study.id}-${rating.item}`,
      rater: rating.rater,
      dimension: rating.dimension as Dimension,
      score: rating.score,
    });
  }
  await manager.stop(study.id);
  const results = await manager.results(study.id, votes, { seed });
  await votes.close();

  console.log("Paper, Table 1 (mean (SD)):");
  console.log("   No FT         FT no tags    FT with tags");
  console.log("Q  2.81 (0.97)   2.96 (0.95)   3.04 (0.87)");
  console.log("F  3.02 (0.98)   2.72 (1.21)   2.77 (1.11)");
  console.log("Weighted Cohen's κ: 0.386 (Q), 0.546 (F)\n");
  console.log(
    `Simulated raters: image SD ${IMAGE_SD}, noise SD ${NOISE_SD}, arm means set to the paper's; seed ${seed}\n`,
  );
  process.stdout.write(formatResults(results, `Study ${results.study.name} (${results.study.id})`));

  console.log("\nRecovered vs true (arm mean, and difference from No FT):");
  let covered = 0;
  let worst = 0;
  for (const s of results.summaries) {
    const dimension = s.dimension as Dimension;
    const truth = expectedScore(
      (model.latent[s.arm] as Record<string, number>)[dimension] as number,
      sd,
    );
    const inside = s.ci !== null && s.ci.low <= truth && truth <= s.ci.high;
    if (inside) covered++;
    worst = Math.max(worst, Math.abs(s.mean - truth));
    const base = results.summaries.find((x) => x.arm === "base" && x.dimension === s.dimension);
    const comparison = results.comparisons.find(
      (c) => c.dimension === s.dimension && c.first === "base" && c.second === s.arm,
    );
    const trueDifference = truth - (PAPER_MEANS[dimension].base as number);
    console.log(
      `  ${dimension.padEnd(12)} ${(LABELS[s.arm] ?? s.arm).padEnd(12)} true ${truth.toFixed(2)}  ` +
        `estimate ${s.mean.toFixed(2)}  95% CI [${s.ci?.low.toFixed(2)}, ${s.ci?.high.toFixed(2)}] ${inside ? "covers" : "MISSES"}` +
        (comparison === undefined || base === undefined
          ? ""
          : `  Δ vs No FT: true ${trueDifference.toFixed(2)}, estimate ${(s.mean - base.mean).toFixed(2)} (permutation p ${comparison.permutation.p.toPrecision(2)})`),
    );
  }
  console.log(
    `${covered} of ${results.summaries.length} intervals cover the true mean; largest error ${worst.toFixed(3)}`,
  );
  if (replications > 0) replicate(replications);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

/**
 * The same design `count` more times (ratings straight into resultsReport, no vote store):
 * the mean estimate of each arm mean and difference against the truth, CI coverage, and the
 * share of studies where the permutation test finds the difference at 0.05.
 */
function replicate(count: number): void {
  const random = seededRandom(seed + 1);
  const cells = new Map<string, { sum: number; covered: number; truth: number }>();
  const differences = new Map<string, { sum: number; found: number; truth: number }>();
  for (let r = 0; r < count; r++) {
    const replicatePlan = makeStudyPlan({
      concepts: CONCEPTS,
      promptsPerConcept: 5,
      arms: ARMS,
      surveys: 2,
      seed: Math.floor(random.next() * 2 ** 32),
    });
    const report = resultsReport(simulateRatings(replicatePlan, PAPER_RATERS, model, random), {
      arms: ARMS,
      seed: r,
      resamples: 500,
      permutationRounds: 499,
    });
    for (const s of report.summaries) {
      const key = `${s.dimension} ${LABELS[s.arm]}`;
      const truth = PAPER_MEANS[s.dimension as Dimension][s.arm] as number;
      const cell = cells.get(key) ?? { sum: 0, covered: 0, truth };
      cell.sum += s.mean;
      if (s.ci !== null && s.ci.low <= truth && truth <= s.ci.high) cell.covered++;
      cells.set(key, cell);
    }
    for (const c of report.comparisons) {
      const key = `${c.dimension} ${LABELS[c.second]} − ${LABELS[c.first]}`;
      const means = PAPER_MEANS[c.dimension as Dimension];
      const truth = (means[c.second] as number) - (means[c.first] as number);
      const difference = differences.get(key) ?? { sum: 0, found: 0, truth };
      difference.sum -= c.permutation.meanDifference; // meanDifference is first − second
      if (c.permutation.p <= 0.05) difference.found++;
      differences.set(key, difference);
    }
  }
  console.log(`\nOver ${count} more simulated studies of the same design (seed ${seed + 1}):`);
  for (const [key, cell] of cells) {
    console.log(
      `  ${key.padEnd(26)} true ${cell.truth.toFixed(2)}  mean estimate ${(cell.sum / count).toFixed(3)}  95% CI covers in ${((100 * cell.covered) / count).toFixed(1)}%`,
    );
  }
  for (const [key, difference] of differences) {
    console.log(
      `  ${key.padEnd(40)} true ${difference.truth.toFixed(2).padStart(5)}  mean estimate ${(difference.sum / count).toFixed(3).padStart(6)}  permutation p ≤ 0.05 in ${((100 * difference.found) / count).toFixed(1)}%`,
    );
  }
}

/** The stored record of a plan item's image (no image is rendered: only the ratings matter). */
function generationFor(item: PlanItem, studyId: string): Generation {
  return {
    id: `${studyId}-${item.id}`,
    createdAt: new Date(0).toISOString(),
    platform: "simulation",
    requester: `study:${studyId}`,
    subject: item.concept,
    arm: item.arm,
    prompt: `${item.concept} (simulated)`,
    promptComplete: true,
    seed: item.seed,
    image: {
      backend: "simulation",
      model: "none",
      width: 0,
      height: 0,
      steps: 0,
      guidance: 0,
      path: "",
    },
    timings: { queuedMs: 0, promptMs: 0, renderMs: 0, totalMs: 0 },
    studyId,
    studyItem: item.id,
  };
}
