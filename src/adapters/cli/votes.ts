/**
 * `imagine-bot votes export`: the vote store's current votes (or its event log) as CSV or JSON
 * lines on stdout, streamed from the store as they are read, through core's one exporter
 * (src/core/study/export.ts documents the columns; the arm only for closed studies).
 */
import { type Command, Option } from "commander";
import { openApp } from "../../app/index.js";
import { UserError } from "../../core/errors.js";
import {
  EVENT_COLUMNS,
  eventRecords,
  exportHeader,
  exportLine,
  VOTE_COLUMNS,
  voteRecords,
} from "../../core/study/export.js";
import { StudyFiles } from "../../core/study/record.js";

export function registerVotesCommands(program: Command): Command {
  const votes = program.command("votes").description("The vote store: export votes and events");
  votes
    .command("export")
    .description(
      "Print the current votes, one row per (generation, rater, dimension) with study, survey and " +
        "(once the study is closed) arm, or with --events the full add/replace/retract log oldest " +
        "first. Reads the store named by votes.storeUrl (IMAGINE_VOTE_STORE).",
    )
    .option("--study <id>", "only the generations of this study")
    .addOption(
      new Option("--format <format>", "csv (with a header) or jsonl")
        .choices(["csv", "jsonl"])
        .default("csv"),
    )
    .option("--events", "the event log instead of the current votes")
    .action(async (flags: { study?: string; format: "csv" | "jsonl"; events?: boolean }) => {
      const app = openApp();
      const studies = await new StudyFiles(app.config.dataDir).list();
      const store = await app.votes();
      // A study is known by its record here or by votes in the (possibly shared) store.
      if (
        flags.study !== undefined &&
        !studies.some((study) => study.id === flags.study) &&
        !(await hasAny(store.studyVotes(flags.study)))
      ) {
        await app.close();
        throw new UserError(
          "USAGE",
          `there is no study ${flags.study} (imagine-bot study status lists the studies)`,
        );
      }
      const columns = flags.events ? EVENT_COLUMNS : VOTE_COLUMNS;
      const selection = { ...(flags.study === undefined ? {} : { study: flags.study }), studies };
      const out = new Output();
      try {
        await out.write(exportHeader(columns, flags.format));
        const records = flags.events
          ? eventRecords(store, selection)
          : voteRecords(store, selection);
        for await (const record of records) {
          if (!(await out.write(exportLine(columns, record, flags.format)))) break;
        }
      } finally {
        await app.close();
      }
    });
  return votes;
}

/** Writes rows to stdout, waiting when the pipe is full; false once the reader has gone. */
class Output {
  private gone = false;

  constructor() {
    process.stdout.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") this.gone = true;
      else throw error;
    });
  }

  async write(text: string): Promise<boolean> {
    if (this.gone) return false;
    if (text === "") return true;
    if (!process.stdout.write(text)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          process.stdout.off("drain", done);
          process.stdout.off("close", done);
          resolve();
        };
        process.stdout.on("drain", done);
        process.stdout.on("close", done);
      });
    }
    return !this.gone;
  }
}

async function hasAny(items: AsyncIterable<unknown>): Promise<boolean> {
  for await (const _ of items) return true;
  return false;
}
