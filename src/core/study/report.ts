/**
 * A results report as JSON and as text (`stats` / `study results`). The text prints every
 * statistic the JSON carries, under the names in RESULT_LABELS (a test walks the JSON and
 * checks each one), with its inputs: raters, items, ratings per item, Fleiss' complete block.
 */
import type { DimensionReport, GroupSummary } from "../stats/index.js";
import { summariesToJson } from "../stats/index.js";
import type { ResultsReport, SurveyResults } from "./results.js";

/**
 * The name the text gives each numeric JSON field (by its key). Every number or null in the JSON
 * has its key here, and the text shows that name next to the value.
 */
export const RESULT_LABELS: Readonly<Record<string, string>> = Object.freeze({
  votes: "votes",
  generations: "images",
  images: "images",
  raters: "raters",
  prompts_per_concept: "prompts per concept",
  n: "n",
  mean: "mean",
  sd: "SD",
  ci_low: "CI",
  ci_high: "CI",
  ci_level: "level",
  resamples: "B",
  level: "level",
  seed: "seed",
  permutation_rounds: "rounds",
  n_items: "items",
  n_raters: "raters",
  n_ratings: "ratings",
  ratings_per_item: "ratings per item",
  min: "min",
  max: "max",
  n_pairable_items: "pairable items",
  percent_agreement: "percent agreement",
  cohen: "Cohen's κ",
  unweighted: "unweighted",
  linear: "linear",
  quadratic: "quadratic",
  fleiss_kappa: "Fleiss' κ",
  fleiss_complete_block: "complete block",
  krippendorff_alpha: "Krippendorff's α",
  nominal: "nominal",
  ordinal: "ordinal",
  interval: "interval",
  likert: "Likert",
  mean_difference: "Δmean",
  p: "p",
  p_holm: "p(Holm)",
  rounds: "rounds",
  images_first: "images",
  images_second: "images",
  strata: "strata",
  u: "U",
  z: "z",
  rank_biserial: "rank-biserial r",
});

const PAPER_STATISTIC =
  "weighted Cohen's κ, the mean over rater pairs: cohen.linear (linear weights) and " +
  "cohen.quadratic (quadratic weights); the paper does not say which weights it used";

/** The report as plain JSON: the study and its design first, then every statistic. */
export function resultsJson(report: ResultsReport) {
  const study = report.study;
  return {
    study:
      study === undefined
        ? null
        : {
            id: study.id,
            name: study.name,
            mode: study.mode,
            status: study.status,
            created_at: study.createdAt,
            closed_at: study.closedAt ?? null,
          },
    design: {
      arms: study?.arms ?? report.arms,
      ...(study?.design === undefined
        ? {}
        : { concepts: study.design.concepts, prompts_per_concept: study.design.promptsPerConcept }),
      surveys: report.surveys.map((s) => ({
        survey: s.survey,
        images: s.images,
        raters: s.raters,
      })),
      raters: report.raterIds,
    },
    votes: report.votes,
    generations: report.generations,
    raters: report.raters,
    arms: report.arms,
    uncertainty: {
      bootstrap_unit: report.uncertainty.unit,
      resamples: report.uncertainty.resamples,
      level: report.uncertainty.level,
      seed: report.uncertainty.seed,
      permutation_rounds: report.uncertainty.permutationRounds,
      permutation_strata: report.uncertainty.strata,
    },
    summaries: summariesToJson(report.summaries),
    agreement: {
      paper_statistic: PAPER_STATISTIC,
      pooled: report.agreement,
      surveys: report.surveys.map((s) => ({
        survey: s.survey,
        images: s.images,
        votes: s.votes,
        raters: s.raters,
        summaries: summariesToJson(s.summaries),
        agreement: s.agreement,
      })),
    },
    comparisons: report.comparisons.map((c) => ({
      dimension: c.dimension,
      first: c.first,
      second: c.second,
      permutation: {
        test: "image-level permutation (primary)",
        mean_difference: c.permutation.meanDifference,
        p: c.permutation.p,
        p_holm: c.pHolm,
        rounds: c.permutation.rounds,
        images_first: c.permutation.images1,
        images_second: c.permutation.images2,
        strata: c.permutation.strata,
      },
      mann_whitney: {
        test: "Mann–Whitney U (secondary: treats ratings as independent)",
        u: c.mannWhitney.u,
        z: c.mannWhitney.z,
        p: c.mannWhitney.p,
        p_holm: c.mannWhitneyPHolm,
        rank_biserial: c.mannWhitney.rankBiserial,
        mean_difference: c.mannWhitney.meanDifference,
        ...(c.mannWhitney.reason === undefined ? {} : { reason: c.mannWhitney.reason }),
      },
    })),
  };
}

const L = RESULT_LABELS as Record<string, string>;
/** Fixed decimals, never "-0.000" for a value that rounds to zero. */
const fixed = (value: number | null, digits: number): string =>
  value === null ? "n/a" : (Math.abs(value) < 0.5 * 10 ** -digits ? 0 : value).toFixed(digits);
const f3 = (value: number | null): string => fixed(value, 3);
const f2 = (value: number | null): string => fixed(value, 2);
const pValue = (value: number | null): string => (value === null ? "n/a" : value.toPrecision(3));

/**
 * The report as text: design and rater sets, Table 1, means with CIs, agreement pooled and per
 * survey (every statistic with its inputs), the arm comparisons.
 */
export function formatResults(report: ResultsReport, title: string): string {
  const lines: string[] = [title];
  const study = report.study;
  const design = study?.design;
  lines.push(
    `Design: ${report.arms.length} arms (${report.arms.join(", ")})` +
      (design === undefined
        ? ""
        : `; ${design.concepts.length} concepts (${design.concepts.join(", ")}) × ${design.promptsPerConcept} ${L.prompts_per_concept}; ${design.surveys} surveys`),
    `${report.votes} ${L.votes} on ${report.generations} ${L.generations} by ${report.raters} ${L.raters}` +
      (report.raterIds.length === 0 ? "" : `: ${report.raterIds.join(", ")}`),
  );
  if (report.surveys.length > 0) {
    lines.push("Surveys:");
    for (const s of report.surveys) {
      lines.push(
        `  survey ${s.survey}: ${s.images} ${L.images}, ${s.votes} ${L.votes}, ${s.raters.length} ${L.raters}: ${s.raters.join(", ")}`,
      );
    }
    const counts = new Map<string, number>();
    for (const s of report.surveys)
      for (const r of s.raters) counts.set(r, (counts.get(r) ?? 0) + 1);
    const shared = [...counts].filter(([, n]) => n > 1).map(([r]) => r);
    lines.push(
      `  raters in more than one survey: ${shared.length === 0 ? "none" : shared.join(", ")}`,
    );
  }
  lines.push("");
  if (report.summaries.length === 0) return `${lines.join("\n")}no votes yet\n`;

  const u = report.uncertainty;
  const unit =
    u.unit === "images"
      ? "bootstrap over images"
      : u.unit === "images-raters"
        ? "two-way bootstrap over images and raters"
        : "bootstrap over ratings (treats ratings as independent)";
  lines.push("Table 1: mean (SD)", report.table.trimEnd(), "");
  lines.push(
    `Means with ${Math.round(u.level * 100)}% CI: ${unit} (${L.resamples} = ${u.resamples}, ${L.level} ${u.level}, ${L.seed} ${u.seed})`,
  );
  lines.push(...summaryLines(report.summaries, "  "));

  lines.push(
    "",
    `Agreement, all ratings pooled${report.surveys.length > 1 ? " (surveys together)" : ""}`,
  );
  lines.push(...agreementLines(report.agreement.dimensions, "  "));
  for (const s of report.surveys) lines.push("", ...surveyLines(s));

  if (report.comparisons.length > 0) {
    lines.push(
      "",
      `Arm comparisons: image-level permutation test (primary; two-sided, ${u.permutationRounds} ${L.rounds}, ` +
        `images exchanged ${u.strata === "surveys" ? "within their survey" : "freely"}; ${L.p_holm} within a dimension)`,
    );
    for (const c of report.comparisons) {
      const t = c.permutation;
      lines.push(
        `  ${c.dimension}: ${c.first} vs ${c.second}  ${L.mean_difference}=${f2(t.meanDifference)}  ` +
          `${L.images_first} ${t.images1} vs ${t.images2}  ${L.strata} ${t.strata}  ` +
          `${L.p}=${pValue(t.p)}  ${L.p_holm}=${pValue(c.pHolm)}`,
      );
    }
    lines.push(
      "Mann–Whitney U (secondary: treats every rating as independent, so its p is too small when images have several raters)",
    );
    for (const c of report.comparisons) {
      const m = c.mannWhitney;
      lines.push(
        `  ${c.dimension}: ${c.first} vs ${c.second}  ${L.u}=${m.u}  ` +
          (m.p === null
            ? `${L.z}=n/a  ${L.p}=n/a  ${L.p_holm}=n/a (${m.reason ?? "undefined"})`
            : `${L.z}=${(m.z as number).toFixed(2)}  ${L.p}=${pValue(m.p)}  ${L.p_holm}=${pValue(c.mannWhitneyPHolm)}`) +
          `  ${L.rank_biserial}=${f3(m.rankBiserial)}  ${L.mean_difference}=${f2(m.meanDifference)}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

function summaryLines(summaries: readonly GroupSummary[], indent: string): string[] {
  return summaries.map(
    (s) =>
      `${indent}${s.arm} ${s.dimension}: ${L.n}=${s.n}  ${L.mean} ${f2(s.mean)}  ${L.sd} ${f2(s.sd)}  ` +
      (s.ci === null
        ? `${L.ci_low} n/a (${s.notes?.ci ?? "no interval"})`
        : `${L.ci_low} [${f2(s.ci.low)}, ${f2(s.ci.high)}] (${L.ci_level} ${s.ci.level}, ${L.resamples} = ${s.ci.resamples}, ${s.ci.unit ?? "ratings"})`),
  );
}

function surveyLines(s: SurveyResults): string[] {
  return [
    `Survey ${s.survey}: ${s.images} ${L.images}, ${s.votes} ${L.votes}, ${s.raters.length} ${L.raters}: ${s.raters.join(", ")}`,
    "  Means in this survey",
    ...summaryLines(s.summaries, "    "),
    `  Agreement in survey ${s.survey}`,
    ...agreementLines(s.agreement.dimensions, "    "),
  ];
}

/** Every agreement statistic of each dimension, with its inputs. */
function agreementLines(dimensions: Record<string, DimensionReport>, indent: string): string[] {
  const lines: string[] = [];
  const inner = `${indent}  `;
  for (const [dimension, d] of Object.entries(dimensions)) {
    const note = (field: string) => (d.notes?.[field] === undefined ? "" : ` (${d.notes[field]})`);
    const perItem = d.ratings_per_item;
    lines.push(
      `${indent}${dimension}: ${d.n_items} ${L.n_items}, ${d.n_raters} ${L.n_raters}, ${d.n_ratings} ${L.n_ratings}; ` +
        `${L.ratings_per_item}: ${L.min} ${perItem.min}, ${L.mean} ${perItem.mean.toFixed(2)}, ${L.max} ${perItem.max}; ` +
        `${d.n_pairable_items} ${L.n_pairable_items} (2+ ratings)`,
      `${inner}weighted ${L.cohen} (the paper's statistic; mean over rater pairs): ` +
        `${L.linear} ${f3(d.cohen.linear)}${note("cohen.linear")}, ${L.quadratic} ${f3(d.cohen.quadratic)}${note("cohen.quadratic")}`,
      `${inner}${L.cohen} ${L.unweighted} (mean over rater pairs): ${f3(d.cohen.unweighted)}${note("cohen.unweighted")}`,
      `${inner}${L.fleiss_kappa}: ${f3(d.fleiss_kappa)}${note("fleiss_kappa")}; ` +
        `${L.fleiss_complete_block}: ${d.fleiss_complete_block.n_items} ${L.n_items} rated by all ${d.fleiss_complete_block.n_raters} ${L.n_raters}`,
      `${inner}${L.krippendorff_alpha} (missing ratings allowed): ${L.nominal} ${f3(d.krippendorff_alpha.nominal)}, ` +
        `${L.ordinal} ${f3(d.krippendorff_alpha.ordinal)}, ${L.interval} ${f3(d.krippendorff_alpha.interval)}` +
        ["nominal", "ordinal", "interval"].map((m) => note(`krippendorff_alpha.${m}`)).join(""),
      `${inner}${L.percent_agreement} (Fleiss' P̄: share of agreeing rating pairs per item, mean over ${L.n_pairable_items}; 0 to 1): ` +
        `${f3(d.percent_agreement)}${note("percent_agreement")}`,
      `${inner}${L.likert} ${L.mean} ${f2(d.likert.mean)}, ${L.sd} ${f2(d.likert.sd)}`,
    );
    if (d.cohen.pairs.length > 0) {
      lines.push(`${inner}${L.cohen} per rater pair:`);
      for (const pair of d.cohen.pairs) {
        lines.push(
          `${inner}  ${pair.raters[0]} – ${pair.raters[1]}: ${pair.n_items} ${L.n_items}, ` +
            `${L.unweighted} ${f3(pair.unweighted)}, ${L.linear} ${f3(pair.linear)}, ${L.quadratic} ${f3(pair.quadratic)}`,
        );
      }
    }
  }
  return lines;
}
