/**
 * `export`: the current votes (CSV or JSON lines, one row per rater × dimension × image, with
 * the arm only for images outside running studies) or the vote event log. Admin-only.
 */
import { z } from "zod";
import { eventsToText, studyEvents, voteRowsToText } from "../core/study/export.js";
import { collectVoteRows } from "../core/study/results.js";
import type { VoteEvent } from "../core/types.js";
import type { Command } from "./command.js";
import { type ReportResult, requireVotes, revealer } from "./stats.js";

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
    let content: string;
    let rows: number;
    if (what === "votes") {
      const all = await collectVoteRows(votes, await revealer(context.studies));
      const selected =
        parsed.study === undefined ? all : all.filter((row) => row.studyId === parsed.study);
      content = voteRowsToText(selected, format);
      rows = selected.length;
    } else {
      const events: VoteEvent[] = [];
      for await (const event of studyEvents(votes, parsed.study)) events.push(event);
      content = eventsToText(events, format);
      rows = events.length;
    }
    return {
      kind: "report",
      text: `${rows} ${what === "votes" ? "votes" : "events"} exported as ${name}\n`,
      data: { what, format, rows, name },
      files: [
        {
          name,
          contentType: format === "csv" ? "text/csv" : "application/x-ndjson",
          content: Buffer.from(content),
        },
      ],
    };
  },
} satisfies Command<typeof options, ReportResult>;
