/**
 * `imagine-bot eval prompts`: the prompt-quality harness (src/core/eval) over configured arms or
 * model directories; a table, or the whole report as JSON.
 */
import { type Command, Option } from "commander";
import { openApp } from "../../app/index.js";
import {
  type EvalArm,
  evalArm,
  evaluatePrompts,
  formatEvalTable,
  readConcepts,
} from "../../core/eval/index.js";
import { loadExplicitFilter } from "../../core/safety/index.js";
import { integer } from "./parse.js";

const list = (value: string): string[] =>
  value
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerEvalCommands(program: Command): Command {
  const evalCommand = program.command("eval").description("Measure prompt generators offline");
  evalCommand
    .command("prompts")
    .description(
      "Per arm: share complete, subject kept, glued continuations, tag fragments, explicit " +
        "prompts, distinct-1/2 within each concept, length in GPT-2 tokens vs the cap, time per prompt",
    )
    .requiredOption(
      "--concepts <file|list>",
      'a file with one concept per line, or a comma-separated list ("a dog,a lighthouse")',
    )
    .option("--arms <names>", "configured arms, comma-separated (default: the default arm)", list)
    .addOption(
      new Option("--model <dir>", "a model directory (repeat for several)")
        .argParser(collect)
        .conflicts("arms"),
    )
    .option("-n, --count <n>", "prompts per concept, decoded as one batch", integer(1, 100), 20)
    .option("--seed <n>", "seed of every concept's batch", integer(0, 2 ** 32 - 1), 1)
    .option("--max-new-tokens <n>", "cap on new tokens for every arm", integer(1, 1024))
    .option("--json", "print the whole report (every prompt included) as JSON")
    .action(async (flags) => {
      const app = openApp();
      const { config, arms } = app;
      try {
        const concepts = readConcepts(flags.concepts, config.prompt.maxSubjectLength);
        const selected: EvalArm[] = [];
        if (flags.model) {
          for (const dir of flags.model as string[])
            selected.push(evalArm(dir, await arms.forModelDir(dir)));
        } else {
          for (const name of (flags.arms as string[] | undefined) ?? [arms.defaultArm])
            selected.push(evalArm(name, await arms.get(name)));
        }
        const report = await evaluatePrompts(selected, {
          concepts,
          count: flags.count,
          seed: flags.seed,
          maxNewTokens: flags.maxNewTokens,
          filter: loadExplicitFilter(config.safety),
        });
        process.stdout.write(
          flags.json ? `${JSON.stringify(report)}\n` : `${formatEvalTable(report)}\n`,
        );
      } finally {
        await app.close();
      }
    });
  return evalCommand;
}
