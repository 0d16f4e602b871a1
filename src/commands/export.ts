/**
 * `export`: the current votes (CSV or JSON lines, one row per rater × dimension × image, with
 * study, survey, and the arm only for images outside running studies) or the vote event log,
 * through core's one exporter (src/core/study/export.ts documents the columns). Admin-only.
 */
import { z } from "zod";
import {
  EVENT_COLUMNS,
  eventRecords,
  exportText,
  VOTE_COLUMNS,
  voteRecords,
} from "../core/study/export.js";
import type { Command } from "./command.js";
import { type ReportResult, requireVotes } from "./stats.js";

const options = z.object({
  what: z.enum(["votes", "events"]).optional().describe("votes (default) or the vote event log"),
  format: z.enum(["csv", "jsonl"]).optional().describe("csv (default) or jsonl"),
  study: z.string().optional().describe("only this study's images"),
});

export const exportCommand = {
  name: "export",
  description: "Export votes or vote events as CSV or JSON lines",
  options,
  adminOnly: true,
  async execute(context, input): Promise<ReportResult> {
    const parsed = options.parse(input);
    const votes = requireVotes(context);
    const what = parsed.what ?? "votes";
    const format = parsed.format ?? "csv";
    if (parsed.study !== undefined) await context.studies?.require(parsed.study);
    const suffix = parsed.study === undefined ? "" : `-${parsed.study}`;
    const name = `${what}${suffix}.${format}`;
    const selection = {
      ...(parsed.study === undefined ? {} : { study: parsed.study }),
      studies: (await context.studies?.list()) ?? [],
    };
    const { text, rows } =
      what === "votes"
        ? await exportText(voteRecords(votes, selection), VOTE_COLUMNS, format)
        : await exportText(eventRecords(votes, selection), EVENT_COLUMNS, format);
    return {
      kind: "report",
      text: `${rows} ${what === "votes" ? "votes" : "events"} exported as ${name}\n`,
      data: { what, format, rows, name },
      files: [
        {
          name,
          contentType: format === "csv" ? "text/csv" : "application/x-ndjson",
          content: Buffer.from(text),
        },
      ],
    };
  },
} satisfies Command<typeof options, ReportResult>;
