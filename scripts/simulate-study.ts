/**
 * Checks the study statistics against simulated studies with known truth: the paper's design
 * (10 concepts × 5 prompts × 3 arms, two surveys of 75 images, four raters each, two raters in
 * both), image-level random effects (SD 0.7) and rating noise (SD 0.7) on a latent scale rounded
 * to 1–4.
 * - Coverage: with arm means 2.81, 2.96, 3.04 (the paper's quality row), how often the 95%
 *   image-bootstrap CI of each arm's mean covers the true mean (goal 93–97%); the
 *   independent-ratings bootstrap on the same data, for contrast.
 * - Size: with every arm at 2.81, how often the image-level permutation test rejects at 0.05
 *   (goal 4–6%); Mann–Whitney on the same data, for contrast.
 * Deterministic (seeded). One core, about a minute for 1,000 studies.
 *
 *   npx tsx scripts/simulate-study.ts [studies=1000] [seed=2026] [unit=images|images-raters] [raterSd=0]
 */
import { checkCalibration, PAPER_RATERS } from "../src/core/study/simulate.js";

const studies = Number(process.argv[2] ?? 1000);
const seed = Number(process.argv[3] ?? 2026);
const unit = (process.argv[4] ?? "images") as "images" | "images-raters";
const raterSd = Number(process.argv[5] ?? 0);
if (!Number.isInteger(studies) || studies < 1)
  throw new Error("studies must be a whole number ≥ 1");
if (unit !== "images" && unit !== "images-raters") throw new Error(`unknown unit ${unit}`);

const started = performance.now();
const result = checkCalibration({
  studies,
  seed,
  concepts: 10,
  promptsPerConcept: 5,
  arms: ["base", "ft-no-tags", "ft-tags"],
  surveys: 2,
  raters: PAPER_RATERS,
  imageSd: 0.7,
  noiseSd: 0.7,
  raterSd,
  armMeans: { base: 2.81, "ft-no-tags": 2.96, "ft-tags": 3.04 },
  resamples: 1000,
  permutationRounds: 999,
  unit,
});
const seconds = (performance.now() - started) / 1000;
const percent = (count: number, of: number) => `${((100 * count) / of).toFixed(1)}%`;
const coverage = result.covered / result.intervals;
const size = result.permutationRejections / result.nullTests;
console.log(
  `${studies} simulated studies (seed ${seed}, bootstrap over ${unit}, rater SD ${raterSd}) in ${seconds.toFixed(1)} s`,
);
console.log(
  `95% CI coverage of the true arm means: ${percent(result.covered, result.intervals)} of ${result.intervals} intervals  goal 93–97%  ${coverage >= 0.93 && coverage <= 0.97 ? "ok" : "OUT"}`,
);
console.log(
  `  independent-ratings bootstrap on the same data: ${percent(result.coveredByRatingsBootstrap, result.intervals)}`,
);
console.log(
  `true-null rejections at 0.05, image-level permutation test: ${percent(result.permutationRejections, result.nullTests)} of ${result.nullTests} tests  goal 4–6%  ${size >= 0.04 && size <= 0.06 ? "ok" : "OUT"}`,
);
console.log(
  `  Mann–Whitney on the same data (ratings as independent): ${percent(result.mannWhitneyRejections, result.nullTests)}`,
);
