/**
 * `imagine-bot votes export`: the vote store's current votes (or its event log) as CSV or JSON
 * lines on stdout, streamed from the store as they are read.
 */
import { type Command, Option } from "commander";
import { openApp } from "../../app/index.js";
import { csvField } from "../../core/csv.js";
import { studyEvents } from "../../core/study/index.js";
import type { Vote, VoteEvent } from "../../core/types.js";

const VOTE_COLUMNS = ["generation", "rater", "dimension", "score", "at"] as const;
const EVENT_COLUMNS = [
  "at",
  "kind",
  "generation",
  "rater",
  "dimension",
  "score",
  "previous",
] as const;

export function registerVotesCommands(program: Command): Command {
  const votes = program.command("votes").description("The vote store: export votes and events");
  votes
    .command("export")
    .description(
      "Print the current votes, one row per (generation, rater, dimension), or with --events the " +
        "full add/replace/retract log oldest first. Reads the store named by votes.storeUrl (IMAGINE_VOTE_STORE).",
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
      const store = await app.votes();
      const out = new Output(flags.format, flags.events ? EVENT_COLUMNS : VOTE_COLUMNS);
      try {
        await out.header();
        if (flags.events) {
          for await (const event of studyEvents(store, flags.study)) {
            if (!(await out.row(eventRow(event)))) break;
          }
        } else {
          const votes =
            flags.study === undefined ? store.allVotes() : store.studyVotes(flags.study);
          for await (const vote of votes) {
            if (!(await out.row(voteRow(vote)))) break;
          }
        }
      } finally {
        await app.close();
      }
    });
  return votes;
}

type Row = Record<string, string | number | undefined>;

function voteRow(vote: Vote): Row {
  return {
    generation: vote.generationId,
    rater: vote.rater,
    dimension: vote.dimension,
    score: vote.score,
    at: vote.at,
  };
}

function eventRow(event: VoteEvent): Row {
  return {
    at: event.at,
    kind: event.kind,
    generation: event.generationId,
    rater: event.rater,
    dimension: event.dimension,
    score: event.score,
    previous: event.previous,
  };
}

/** Writes rows to stdout, waiting when the pipe is full; false once the reader has gone. */
class Output {
  private gone = false;

  constructor(
    private readonly format: "csv" | "jsonl",
    private readonly columns: readonly string[],
  ) {
    process.stdout.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") this.gone = true;
      else throw error;
    });
  }

  /** CSV starts with its header, even when no row follows. */
  async header(): Promise<void> {
    if (this.format === "csv") await this.write(`${this.columns.join(",")}\n`);
  }

  row(row: Row): Promise<boolean> {
    return this.write(
      this.format === "jsonl"
        ? `${JSON.stringify(row)}\n`
        : `${this.columns.map((column) => csvField(row[column])).join(",")}\n`,
    );
  }

  private async write(text: string): Promise<boolean> {
    if (this.gone) return false;
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
