/**
 * `stats`: the paper's Table 1 (per-arm mean (SD) for quality and faithfulness, bootstrap CIs),
 * agreement per dimension and Mann–Whitney between arms — for one closed study, or for every
 * vote whose arm may be shown (generations of running studies are left out). Admin-only.
 */
import { z } from "zod";
import { BotError, UserError } from "../core/errors.js";
import { summariesToCsv, summariesToJson } from "../core/stats/index.js";
import type { StudyManager } from "../core/study/manager.js";
import {
  collectVoteRows,
  type ResultsReport,
  ratingsFromRows,
  resultsReport,
} from "../core/study/results.js";
import type { VoteStore } from "../core/types.js";
import type { Command, CommandContext, ReportFile, ReportResult } from "./command.js";

export type { ReportFile, ReportResult } from "./command.js";

export const FORMATS = ["table", "json", "csv"] as const;
export type StatsFormat = (typeof FORMATS)[number];

const options = z.object({
  study: z
    .string()
    .optional()
    .describe("a closed study's id (default: every vote whose arm may be shown)"),
  format: z.enum(FORMATS).optional().describe("table (default), json or csv"),
  chart: z.boolean().optional().describe("attach a chart of the means with 95% CIs"),
});

export const statsCommand = {
  name: "stats",
  description: "Mean ratings per arm (Table 1), agreement and arm comparisons",
  options,
  adminOnly: true,
  async execute(context, input): Promise<ReportResult> {
    const parsed = options.parse(input);
    const votes = requireVotes(context);
    const studies = context.studies;
    let report: ResultsReport;
    let title: string;
    if (parsed.study !== undefined) {
      if (studies === undefined) throw missing("study manager (context.studies)");
      const results = await studies.results(parsed.study, votes);
      report = results;
      title = `Study ${results.study.name} (${results.study.id})`;
    } else {
      const rows = await collectVoteRows(votes, await revealer(studies));
      report = resultsReport(ratingsFromRows(rows));
      const hidden = rows.filter((row) => row.arm === null).length;
      title = `All votes${hidden > 0 ? ` (${hidden} votes of running studies left out)` : ""}`;
    }
    return reportResult(report, title, parsed.format ?? "table", parsed.chart ?? false);
  },
} satisfies Command<typeof options, ReportResult>;

export function requireVotes(context: CommandContext): VoteStore {
  if (context.votes === undefined) throw missing("vote store (context.votes)");
  return context.votes;
}

export function missing(what: string): BotError {
  return new BotError(
    "USAGE",
    `this command needs the ${what}, which this adapter did not provide`,
  );
}

/** Which studies' arms may be shown: the closed ones; with no manager, none. */
export async function revealer(
  studies: StudyManager | undefined,
): Promise<(studyId: string) => boolean> {
  const revealed = studies === undefined ? new Set<string>() : await studies.revealedIds();
  return (studyId) => revealed.has(studyId);
}

/** A results report as text / JSON / CSV, with the chart PNG when asked and there are votes. */
export async function reportResult(
  report: ResultsReport,
  title: string,
  format: StatsFormat,
  chart: boolean,
): Promise<ReportResult> {
  const data = reportJson(report);
  let text: string;
  if (format === "json") text = `${JSON.stringify(data, null, 2)}\n`;
  else if (format === "csv") text = summariesToCsv(report.summaries);
  else text = formatReport(report, title);
  const files: ReportFile[] = [];
  if (chart) {
    // Loaded when a chart is asked for: vega-lite, loaded before discord.js, breaks the latter's
    // util.inspect polyfill at import ("Set()" is not iterable), and most runs draw no chart.
    const { renderMeansChart } = await import("../core/stats/chart.js");
    if (report.summaries.length === 0) {
      throw new UserError("USAGE", "there are no votes to chart yet");
    }
    files.push({
      name: "means.png",
      contentType: "image/png",
      content: await renderMeansChart(report.summaries, { arms: report.arms, title }),
    });
  }
  return { kind: "report", text, data, files };
}

export function reportJson(report: ResultsReport) {
  return {
    votes: report.votes,
    generations: report.generations,
    raters: report.raters,
    arms: report.arms,
    summaries: summariesToJson(report.summaries),
    agreement: report.agreement,
    comparisons: report.comparisons.map((c) => ({
      dimension: c.dimension,
      first: c.first,
      second: c.second,
      u: c.mannWhitney.u,
      z: c.mannWhitney.z,
      p: c.mannWhitney.p,
      p_holm: c.pHolm,
      rank_biserial: c.mannWhitney.rankBiserial,
      mean_difference: c.mannWhitney.meanDifference,
      ...(c.mannWhitney.reason === undefined ? {} : { reason: c.mannWhitney.reason }),
    })),
  };
}

/** Table 1, the CIs, agreement per dimension and the arm comparisons as plain text. */
export function formatReport(report: ResultsReport, title: string): string {
  const lines = [
    title,
    `${report.votes} votes on ${report.generations} images by ${report.raters} raters`,
    "",
  ];
  if (report.summaries.length === 0) return `${lines.join("\n")}no votes yet\n`;
  lines.push("Mean (SD)", report.table.trimEnd(), "");
  lines.push("95% bootstrap CI of the mean");
  for (const s of report.summaries) {
    lines.push(
      `  ${s.arm} ${s.dimension}: n=${s.n}  ${s.ci === null ? "–" : `[${s.ci.low.toFixed(2)}, ${s.ci.high.toFixed(2)}]`}`,
    );
  }
  lines.push("", "Agreement (Cohen's κ: mean over rater pairs)");
  for (const [dimension, d] of Object.entries(report.agreement.dimensions)) {
    const f = (value: number | null) => (value === null ? "n/a" : value.toFixed(3));
    lines.push(
      `  ${dimension}: κ linear ${f(d.cohen.linear)}  κ quadratic ${f(d.cohen.quadratic)}  ` +
        `α ordinal ${f(d.krippendorff_alpha.ordinal)}  agreement ${f(d.percent_agreement)}`,
    );
  }
  if (report.comparisons.length > 0) {
    lines.push("", "Mann–Whitney U (two-sided; Holm-adjusted p per dimension)");
    for (const c of report.comparisons) {
      const m = c.mannWhitney;
      lines.push(
        `  ${c.dimension}: ${c.first} vs ${c.second}  U=${m.u}  ` +
          (m.p === null
            ? `p n/a (${m.reason ?? "undefined"})`
            : `z=${(m.z as number).toFixed(2)}  p=${m.p.toPrecision(3)}  p(Holm)=${(c.pHolm as number).toPrecision(3)}`) +
          `  Δmean=${m.meanDifference.toFixed(2)}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}
