/** `imagine-bot data …`: preparing caption data for training/. */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { tokenizeCaptions } from "../../core/data/tokenize.js";
import { UserError } from "../../core/errors.js";
import { registerConceptsCommand } from "./dataConcepts.js";
import { registerPrepareCommands } from "./dataPrepare.js";
import { fraction, integer } from "./parse.js";

export function registerDataCommands(program: Command): Command {
  const data = program.command("data").description("Prepare caption data for training");
  data
    .command("tokenize")
    .description("Captions (plain text, one per line) → train.tokens and eval.tokens for training/")
    .requiredOption("--input <file...>", "caption files, one caption per line")
    .requiredOption("--out <dir>", "output folder")
    .option("--tags", "wrap each caption in the start and end tags (default)", true)
    .option("--no-tags", "do not wrap captions in tags")
    .option("--start-tag <text>", "start tag", "<|startoftext|>")
    .option(
      "--end-tag <text>",
      "end tag (<|endoftext|> is GPT-2's single end-of-text token)",
      "<|endoftext|>",
    )
    .option("--eval-fraction <f>", "share of captions held out for evaluation", fraction, 0.1)
    .option("--seed <n>", "seed of the train/eval split", integer(0, 2 ** 32 - 1), 1)
    .option(
      "--limit <n>",
      "stop after this many kept captions",
      integer(1, Number.MAX_SAFE_INTEGER),
    )
    .option("--json", "print the report as JSON")
    .action(async (flags) => {
      for (const input of flags.input as string[]) {
        if (!existsSync(input)) throw new UserError("USAGE", `--input ${input}: no such file`);
      }
      const report = await tokenizeCaptions({
        inputs: flags.input,
        outDir: flags.out,
        tags: flags.tags ? { start: flags.startTag, end: flags.endTag } : null,
        evalFraction: flags.evalFraction,
        seed: flags.seed,
        limit: flags.limit,
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else {
        process.stdout.write(
          `read ${report.read}, kept ${report.kept}, dropped ${report.dropped.empty} empty\n` +
            `train: ${report.train.documents} captions, ${report.train.tokens} tokens\n` +
            `eval:  ${report.eval.documents} captions, ${report.eval.tokens} tokens\n` +
            `mean caption length: ${report.train.meanCaptionTokens.toFixed(2)} tokens\n`,
        );
      }
    });

  // Further data subcommands register here.
  registerPrepareCommands(data);
  registerConceptsCommand(data);
  return data;
}
