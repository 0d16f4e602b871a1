/**
 * Time to compute every statistic over 100,000 votes from 200 raters: summaries with a
 * 2,000-resample image (cluster) bootstrap per (arm, dimension), the agreement report per
 * dimension (Cohen's κ for all 19,900 rater pairs, Fleiss' κ, Krippendorff's α, percent
 * agreement), and between every pair of arms on each dimension the image-level permutation test
 * (9,999 rounds, as `study results`) and Mann–Whitney. Goal: under 1 s.
 *
 * Synthetic, seeded data: 1,250 items (images) spread over 3 arms, each rated on 2 dimensions by
 * 40 of the 200 raters; scores 1–4 from the image's latent quality, the rater's bias and noise.
 *
 *   npx tsx bench/stats.ts
 */
import { seededRandom } from "../src/core/random.js";
import {
  type ArmRating,
  agreementReport,
  clusterPermutationTest,
  imageTotals,
  mannWhitneyU,
  summarize,
} from "../src/core/stats/index.js";

const GOAL_MS = 1000;
const ITEMS = 1250;
const RATERS = 200;
const RATERS_PER_ITEM = 40;
const ARMS = ["No FT", "FT no tags", "FT with tags"];
const DIMENSIONS = ["quality", "faithfulness"];
const ROUNDS = 5;
const PERMUTATION_ROUNDS = 9999;

function syntheticVotes(seed: number): ArmRating[] {
  const random = seededRandom(seed);
  const gaussian = () =>
    Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
  const bias = Array.from({ length: RATERS }, () => 0.4 * gaussian());
  const raters = Array.from({ length: RATERS }, (_, i) => i);
  const votes: ArmRating[] = [];
  for (let item = 0; item < ITEMS; item++) {
    const arm = ARMS[item % ARMS.length] as string;
    const latent = DIMENSIONS.map(
      (_, d) => 2.6 + 0.15 * (item % 3) * (d === 0 ? 1 : -1) + 0.7 * gaussian(),
    );
    // A random 40 of the 200 raters (partial Fisher–Yates).
    for (let i = 0; i < RATERS_PER_ITEM; i++) {
      const j = i + Math.floor(random.next() * (RATERS - i));
      [raters[i], raters[j]] = [raters[j] as number, raters[i] as number];
      const rater = raters[i] as number;
      DIMENSIONS.forEach((dimension, d) => {
        const value = (latent[d] as number) + (bias[rater] as number) + 0.6 * gaussian();
        votes.push({
          item: `img${item}`,
          rater: `rater${rater}`,
          arm,
          dimension,
          score: Math.min(4, Math.max(1, Math.round(value))),
        });
      });
    }
  }
  return votes;
}

function allStatistics(votes: ArmRating[]) {
  const summaries = summarize(votes, { seed: 1, resamples: 2000 });
  const agreement = agreementReport(votes);
  const tests = DIMENSIONS.flatMap((dimension) =>
    ARMS.flatMap((a, i) =>
      ARMS.slice(i + 1).map((b) => {
        const ofArm = (arm: string) =>
          votes.filter((v) => v.arm === arm && v.dimension === dimension);
        const scores = (arm: string) => ofArm(arm).map((v) => v.score);
        return {
          dimension,
          a,
          b,
          ...mannWhitneyU(scores(a), scores(b)),
          permutation: clusterPermutationTest(
            imageTotals(ofArm(a)),
            imageTotals(ofArm(b)),
            seededRandom(1),
            PERMUTATION_ROUNDS,
          ),
        };
      }),
    ),
  );
  return { summaries, agreement, tests };
}

const votes = syntheticVotes(2024);
console.log(
  `${votes.length} votes, ${RATERS} raters, ${ITEMS} items × ${DIMENSIONS.length} dimensions × ${ARMS.length} arms, ${RATERS_PER_ITEM} raters per item`,
);
allStatistics(votes); // warm-up (JIT)

// Wall time, and this process's CPU time (user + system), which other load on the machine
// disturbs less.
const times: number[] = [];
const cpuTimes: number[] = [];
let result = allStatistics(votes);
for (let round = 0; round < ROUNDS; round++) {
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  result = allStatistics(votes);
  const cpu = process.cpuUsage(cpuStart);
  times.push(performance.now() - start);
  cpuTimes.push((cpu.user + cpu.system) / 1000);
}
// Per-part timings of one more run.
const part = (label: string, run: () => unknown) => {
  const start = performance.now();
  run();
  console.log(`  ${label.padEnd(52)} ${(performance.now() - start).toFixed(1).padStart(7)} ms`);
};
part("summaries, image bootstrap B = 2,000 for 6 groups", () => summarize(votes, { seed: 1 }));
part("agreement: κ for 19,900 pairs × 2 dims, Fleiss, α, %", () => agreementReport(votes));
part("image permutation test, 9,999 rounds, 3 pairs × 2 dims", () => {
  for (const d of DIMENSIONS) {
    for (const [a, b] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      clusterPermutationTest(
        imageTotals(votes.filter((v) => v.arm === ARMS[a] && v.dimension === d)),
        imageTotals(votes.filter((v) => v.arm === ARMS[b] && v.dimension === d)),
        seededRandom(1),
        PERMUTATION_ROUNDS,
      );
    }
  }
});
part("Mann–Whitney, 3 arm pairs × 2 dimensions", () => {
  for (const d of DIMENSIONS) {
    for (const [a, b] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      mannWhitneyU(
        votes.filter((v) => v.arm === ARMS[a] && v.dimension === d).map((v) => v.score),
        votes.filter((v) => v.arm === ARMS[b] && v.dimension === d).map((v) => v.score),
      );
    }
  }
});

times.sort((a, b) => a - b);
cpuTimes.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] as number;
const cpuMedian = cpuTimes[Math.floor(cpuTimes.length / 2)] as number;
const quality = result.agreement.dimensions.quality;
console.log(
  `all statistics: median ${median.toFixed(0)} ms of ${ROUNDS} runs (min ${(times[0] as number).toFixed(0)}, max ${(times.at(-1) as number).toFixed(0)}; CPU ${cpuMedian.toFixed(0)} ms)  goal < ${GOAL_MS} ms  ${median < GOAL_MS ? "ok" : "OVER"}`,
);
console.log(
  `  check: quality κ linear ${quality?.cohen.linear?.toFixed(3)} over ${quality?.cohen.pairs.length} pairs, α interval ${quality?.krippendorff_alpha.interval?.toFixed(3)}, ` +
    `Fleiss ${quality?.fleiss_kappa ?? `null (${quality?.notes?.fleiss_kappa})`}`,
);
