/**
 * `stats`: the paper's Table 1 (per-arm mean (SD) for quality and faithfulness, bootstrap CIs),
 * agreement per dimension and Mann–Whitney between arms — for one closed study, or for every
 * vote whose arm may be shown (generations of running studies are left out). Admin-only.
 */
import { z } from "zod";
import { BotError, UserError } from "../core/errors.js";
import { summariesToCsv } from "../core/stats/index.js";
import type { StudyManager } from "../core/study/manager.js";
import { formatResults, resultsJson } from "../core/study/report.js";
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
      const rows = await collectVoteRows(votes, await revealer(studies), await studies?.list());
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
  const data = resultsJson(report);
  let text: string;
  if (format === "json") text = `${JSON.stringify(data, null, 2)}\n`;
  else if (format === "csv") text = summariesToCsv(report.summaries);
  else text = formatResults(report, title);
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
