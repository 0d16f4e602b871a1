/**
 * `imagine-bot stats`, `imagine-bot study start|stop|status|results|plan` and
 * `imagine-bot export`: the admin commands on the command line, over the configured vote store
 * (votes.storeUrl / IMAGINE_VOTE_STORE) and the study files in the data directory.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { openApp } from "../../app/index.js";
import type { CommandContext } from "../../commands/command.js";
import { exportCommand } from "../../commands/export.js";
import { type ReportResult, statsCommand } from "../../commands/stats.js";
import { studyCommand } from "../../commands/study.js";
import { UserError } from "../../core/errors.js";
import { makeStudyPlan, planSurveys, type StudyPlan } from "../../core/study/plan.js";
import { cliInvocation } from "./context.js";
import { integer, writeOutputFile } from "./parse.js";

/** What the commands run with; tests pass their own. */
export type StudyCliContext = CommandContext & { close(): Promise<void> };

export interface StudyCliOptions {
  openContext?: () => Promise<StudyCliContext>;
  /** Where output goes (default process.stdout). */
  write?: (text: string) => void;
}

async function openStudyContext(): Promise<StudyCliContext> {
  const app = openApp();
  try {
    return {
      config: app.config,
      arms: app.arms,
      logger: app.logger,
      votes: await app.votes(),
      studies: app.studies(),
      invocation: cliInvocation(),
      close: () => app.close(),
    };
  } catch (error) {
    await app.close();
    throw error;
  }
}

const formats = ["table", "json", "csv"] as const;

export function registerStudyCommands(program: Command, options: StudyCliOptions = {}): Command {
  const open = options.openContext ?? openStudyContext;
  const write = options.write ?? ((text: string) => process.stdout.write(text));
  async function withContext<T>(run: (context: StudyCliContext) => Promise<T>): Promise<T> {
    const context = await open();
    try {
      return await run(context);
    } finally {
      await context.close();
    }
  }
  async function emit(result: ReportResult, chartFile?: string, json?: boolean): Promise<void> {
    write(json ? `${JSON.stringify(result.data)}\n` : result.text);
    if (chartFile !== undefined) {
      const png = result.files.find((file) => file.contentType === "image/png");
      if (png === undefined) throw new UserError("USAGE", "no chart: there are no votes to chart");
      await writeOutputFile(chartFile, png.content);
      process.stderr.write(`chart written to ${chartFile}\n`);
    }
  }

  program
    .command("stats")
    .description(
      "Mean ratings per arm (the paper's Table 1 with bootstrap CIs), agreement per dimension and Mann–Whitney between arms;\n" +
        "votes of running studies are left out",
    )
    .option("--study <id>", "one closed study (default: every vote whose arm may be shown)")
    .addOption(new Option("--format <format>", "output format").choices(formats).default("table"))
    .option("--chart <file.png>", "also write the means chart (800×450 PNG) to this file")
    .action(async (flags: { study?: string; format: (typeof formats)[number]; chart?: string }) => {
      await withContext(async (context) => {
        const result = await statsCommand.execute(context, {
          study: flags.study,
          format: flags.format,
          chart: flags.chart !== undefined,
        });
        await emit(result, flags.chart);
      });
    });

  const study = program
    .command("study")
    .description("Blind studies comparing arms: start, stop, status, results, plan");

  study
    .command("start")
    .description(
      "Start a study. live: /imagine in its channels gets an arm chosen blind and balanced.\n" +
        "batch: the paper's plan (concepts × prompts × arms in surveys), posted by the bot",
    )
    .requiredOption("--name <name>", "a name for the study")
    .option("--arms <list>", "arms to compare, comma-separated (default: every configured arm)")
    .addOption(
      new Option("--mode <mode>", "live or batch").choices(["live", "batch"]).default("live"),
    )
    .option(
      "--channels <list>",
      "live: channel ids whose /imagine joins the study; batch: where to post",
    )
    .option("--concepts <list>", "batch: subjects, comma-separated")
    .option("--prompts <n>", "batch: prompts per concept and arm", integer(1, 50), 5)
    .option("--surveys <n>", "batch: surveys to split the images into", integer(1, 100), 2)
    .option(
      "--seed <n>",
      "batch: plan seed (default: random, kept secret)",
      integer(0, 2 ** 32 - 1),
    )
    .option("--json", "print the study as JSON")
    .action(async (flags) => {
      await withContext(async (context) => {
        const result = await studyCommand.execute(context, {
          action: "start",
          name: flags.name,
          mode: flags.mode,
          arms: flags.arms,
          channels: flags.channels,
          concepts: flags.concepts,
          prompts: flags.prompts,
          surveys: flags.surveys,
          seed: flags.seed,
        });
        await emit(result, undefined, flags.json);
      });
    });

  study
    .command("stop")
    .description("Close a study: assignment and posting stop, results can be shown")
    .argument("<id>", "the study id")
    .option("--json", "print the study as JSON")
    .action(async (id: string, flags: { json?: boolean }) => {
      await withContext(async (context) => {
        await emit(
          await studyCommand.execute(context, { action: "stop", study: id }),
          undefined,
          flags.json,
        );
      });
    });

  study
    .command("status")
    .description("One study, or every study (never an image's arm)")
    .argument("[id]", "the study id (default: all)")
    .option("--json", "print JSON")
    .action(async (id: string | undefined, flags: { json?: boolean }) => {
      await withContext(async (context) => {
        await emit(
          await studyCommand.execute(context, { action: "status", study: id }),
          undefined,
          flags.json,
        );
      });
    });

  study
    .command("results")
    .description(
      "A closed study's Table 1 with image-bootstrap CIs, agreement per survey and pooled,\n" +
        "image-level permutation tests between arms (Mann–Whitney secondary), and chart",
    )
    .argument("<id>", "the study id")
    .addOption(new Option("--format <format>", "output format").choices(formats).default("table"))
    .option("--chart <file.png>", "also write the means chart (800×450 PNG) to this file")
    .addOption(
      new Option(
        "--bootstrap <unit>",
        "what the CIs resample: images, or images and raters (two-way)",
      )
        .choices(["images", "images-raters"])
        .default("images"),
    )
    .action(
      async (
        id: string,
        flags: {
          format: (typeof formats)[number];
          chart?: string;
          bootstrap: "images" | "images-raters";
        },
      ) => {
        await withContext(async (context) => {
          const result = await studyCommand.execute(context, {
            action: "results",
            study: id,
            format: flags.format,
            chart: flags.chart !== undefined,
            bootstrap: flags.bootstrap,
          });
          await emit(result, flags.chart);
        });
      },
    );

  study
    .command("plan")
    .description(
      "Print a batch plan: concepts × prompts × arms items in random order, split into balanced surveys\n" +
        "(the paper: 10 × 5 × 3 = 150 images in 2 surveys of 75). Shows the arms: for designing, not for raters",
    )
    .requiredOption("--concepts <list>", "subjects, comma-separated", commaList)
    .option("--prompts <n>", "prompts per concept and arm", integer(1, 50), 5)
    .requiredOption("--arms <list>", "arms, comma-separated", commaList)
    .option("--surveys <n>", "surveys to split into", integer(1, 100), 2)
    .requiredOption("--seed <n>", "the plan seed (same seed, same plan)", integer(0, 2 ** 32 - 1))
    .option("--json", "print the plan as JSON")
    .action((flags) => {
      let plan: StudyPlan;
      try {
        plan = makeStudyPlan({
          concepts: flags.concepts,
          promptsPerConcept: flags.prompts,
          arms: flags.arms,
          surveys: flags.surveys,
          seed: flags.seed,
        });
      } catch (error) {
        throw new UserError("USAGE", (error as Error).message);
      }
      write(flags.json ? `${JSON.stringify(plan)}\n` : formatPlan(plan));
    });

  program
    .command("export")
    .description("Export the current votes or the vote event log as CSV or JSON lines")
    .addOption(
      new Option("--what <what>", "votes or events").choices(["votes", "events"]).default("votes"),
    )
    .addOption(
      new Option("--format <format>", "file format").choices(["csv", "jsonl"]).default("csv"),
    )
    .option("--study <id>", "only this study's images (arms stay empty while it runs)")
    .option("--out <file>", "write to this file instead of stdout")
    .action(
      async (flags: {
        what: "votes" | "events";
        format: "csv" | "jsonl";
        study?: string;
        out?: string;
      }) => {
        await withContext(async (context) => {
          const result = await exportCommand.execute(context, {
            what: flags.what,
            format: flags.format,
            study: flags.study,
          });
          const file = result.files[0];
          if (file === undefined) return;
          if (flags.out === undefined) write(file.content.toString("utf8"));
          else {
            await writeOutputFile(flags.out, file.content);
            process.stderr.write(result.text.replace(/as \S+\n$/, `to ${flags.out}\n`));
          }
        });
      },
    );

  return study;
}

function formatPlan(plan: StudyPlan): string {
  const lines = [
    `# ${plan.items.length} items: ${plan.concepts.length} concepts × ${plan.promptsPerConcept} prompts × ${plan.arms.length} arms, ${plan.surveys} surveys, seed ${plan.seed}`,
  ];
  for (const [index, items] of planSurveys(plan).entries()) {
    const counts = plan.arms.map((arm) => `${arm} ${items.filter((i) => i.arm === arm).length}`);
    lines.push(`## survey ${index + 1}: ${items.length} items (${counts.join(", ")})`);
    for (const item of items) {
      lines.push(
        `${item.id}\t${item.arm}\t${item.concept}\tprompt ${item.promptIndex}\tseed ${item.seed}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

function commaList(value: string): string[] {
  const parts = value
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length === 0) throw new InvalidArgumentError("expected a comma-separated list");
  return parts;
}
