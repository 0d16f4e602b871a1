/** `imagine-bot data prepare` and `data lengths`: flags → src/core/data, report → stdout. */
import { availableParallelism } from "node:os";
import { type Command, Option } from "commander";
import { loadConfig } from "../../core/config.js";
import { captionLengths } from "../../core/data/lengths.js";
import { explicitFilterSource, prepareCaptions } from "../../core/data/prepare.js";
import { createProgress } from "../../core/data/progress.js";
import { CAPTION_FORMATS } from "../../core/data/readers.js";
import { fraction, integer } from "./parse.js";

const count = (n: number) => n.toLocaleString("en-US");

function inputOptions(command: Command): Command {
  return command
    .requiredOption(
      "--input <file...>",
      "caption files, read in order: .parquet, .csv, .tsv, .jsonl/.ndjson, .txt",
    )
    .option("--column <name>", "column or JSON field holding the caption (default: TEXT, caption)")
    .addOption(
      new Option("--format <format>", "input format (default: from each file's extension)").choices(
        CAPTION_FORMATS,
      ),
    )
    .option(
      "--workers <n>",
      "worker threads for cleaning and tokenizing (1 = inline)",
      integer(1, 256),
      availableParallelism(),
    );
}

export function registerPrepareCommands(data: Command): void {
  inputOptions(
    data
      .command("prepare")
      .description(
        "Caption files (LAION parquet, CSV/TSV, JSONL, text) → cleaned, filtered, tagged " +
          "train/eval token files for training/",
      ),
  )
    .requiredOption("--out <dir>", "output folder")
    .option(
      "--limit <n>",
      "keep the first N captions that survive cleaning and filtering",
      integer(1, Number.MAX_SAFE_INTEGER),
      450_000,
    )
    .option("--no-limit", "keep every caption")
    .option("--eval-fraction <f>", "share of captions held out for evaluation", fraction, 0.1)
    .option("--tags", "wrap each caption in the start and end tags (default)", true)
    .option("--no-tags", "write captions back to back, without tags")
    .option("--start-tag <text>", "start tag", "<|startoftext|>")
    .option(
      "--end-tag <text>",
      "end tag (<|endoftext|> is GPT-2's single end-of-text token)",
      "<|endoftext|>",
    )
    .option("--seed <n>", "seed of the train/eval split", integer(0, 2 ** 32 - 1), 1)
    .option("--json", "print the report as JSON")
    .action(async (flags) => {
      const { config } = loadConfig();
      const report = await prepareCaptions({
        inputs: flags.input,
        outDir: flags.out,
        column: flags.column,
        format: flags.format,
        tags: flags.tags ? { start: flags.startTag, end: flags.endTag } : null,
        evalFraction: flags.evalFraction,
        seed: flags.seed,
        limit: flags.limit === false ? undefined : flags.limit,
        filter: explicitFilterSource(config.safety),
        workers: flags.workers,
        progress: createProgress({ label: "prepare" }),
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
        return;
      }
      const { dropped } = report;
      const lines = [
        `read ${count(report.read)} rows from ${report.inputs.length} file(s); kept ${count(report.kept)}` +
          (report.limitReached ? ` (the --limit of ${count(report.limit ?? 0)})` : "") +
          `; dropped ${count(dropped.empty)} empty, ${count(dropped.explicit)} explicit, ` +
          `${count(dropped.malformed)} malformed`,
        ...report.malformed.map((m) => `  malformed: ${m.input} row ${m.row}: ${m.reason}`),
        `train: ${count(report.train.captions)} captions, ${count(report.train.tokens)} tokens, ` +
          `mean caption ${report.train.meanCaptionTokens.toFixed(2)} tokens`,
        `eval:  ${count(report.eval.captions)} captions, ${count(report.eval.tokens)} tokens, ` +
          `mean caption ${report.eval.meanCaptionTokens.toFixed(2)} tokens`,
        `wrote ${report.outDir}: train.tokens, eval.tokens, train.txt, eval.txt, report.json ` +
          `(${report.durationSeconds.toFixed(1)} s, ${count(Math.round(report.captionsPerSecond))} captions/s)`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    });

  inputOptions(
    data
      .command("lengths")
      .description(
        "GPT-2 token lengths of the cleaned captions: mean (the generation length), median, p90",
      ),
  )
    .option(
      "--limit <n>",
      "measure the first N non-empty captions",
      integer(1, Number.MAX_SAFE_INTEGER),
      300_000,
    )
    .option("--no-limit", "measure every caption")
    .option("--json", "print the statistics as JSON")
    .action(async (flags) => {
      const report = await captionLengths({
        inputs: flags.input,
        column: flags.column,
        format: flags.format,
        limit: flags.limit === false ? undefined : flags.limit,
        workers: flags.workers,
        progress: createProgress({ label: "lengths" }),
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
        return;
      }
      process.stdout.write(
        `${count(report.count)} captions (${count(report.read)} rows read; ` +
          `${count(report.dropped.empty)} empty, ${count(report.dropped.malformed)} malformed)\n` +
          `GPT-2 tokens: mean ${report.mean.toFixed(2)}, median ${report.median}, p90 ${report.p90}, ` +
          `min ${report.min}, max ${report.max}\n`,
      );
    });
}
