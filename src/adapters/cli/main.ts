#!/usr/bin/env node
/**
 * The `imagine-bot` command line: a thin translator from flags to commands and core calls.
 * Exit codes: 0 success, 1 failure, 2 usage error (bad flags, bad subject, bad configuration
 * or model directory).
 */
import { randomBytes } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { openApp } from "../../app/index.js";
import type { CommandContext } from "../../commands/command.js";
import { promptCommand } from "../../commands/prompt.js";
import { loadConfig } from "../../core/config.js";
import { isBotError, isOperatorFixable } from "../../core/errors.js";
import { createLogger } from "../../core/logger.js";
import { failureReference } from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import { registerAgreementCommand } from "./agreement.js";
import { registerDataCommands } from "./data.js";
import { registerDiscordCommand } from "./discord.js";
import { registerDoctorCommand } from "./doctor.js";
import { registerEvalCommands } from "./eval.js";
import { registerImagineCommand } from "./imagine.js";
import { registerModelsCommands } from "./models.js";
import { CommandExit, integer } from "./parse.js";
import { registerSafetyCommands } from "./safety.js";
import { registerServeCommands } from "./serve.js";
import { registerSlackCommand } from "./slack.js";
import { registerStudyCommands } from "./study.js";
import { registerVotesCommands } from "./votes.js";
import { registerWebCommands } from "./web.js";
import { registerWorkerCommands } from "./worker.js";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

/** The prompt command needs configuration and the arms only; closed by the caller. */
function openContext(): CommandContext & { close(): Promise<void> } {
  const app = openApp();
  return { config: app.config, arms: app.arms, logger: app.logger, close: () => app.close() };
}

export function buildProgram(): Command {
  const program = new Command("imagine-bot")
    .description(
      "Turns a bare subject into complete text-to-image prompts with a LAION-finetuned GPT-2.\n" +
        "Configuration: config/default.json, IMAGINE_CONFIG=file.json, then environment variables (see .env.example).",
    )
    .version("0.1.0")
    .option(
      "--verbose",
      "log to stderr (one-shot commands otherwise log to <data dir>/logs/cli.log)",
    )
    .showHelpAfterError("(run with --help for usage)")
    // Set before subcommands are added: they copy these settings when created.
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  program
    .command("prompt")
    .description(
      "Write prompts for a subject with the default arm, a named arm, or a model directory",
    )
    .argument("<subject>", 'what the image should show, e.g. "a lighthouse"')
    .option("-n, --count <n>", "how many prompts, decoded as one batch", integer(1, 16))
    .option("--arm <name>", "a configured arm (default: the configured defaultArm)")
    .addOption(new Option("--model <dir>", "a model directory instead of an arm").conflicts("arm"))
    .option(
      "--seed <n>",
      "same seed, same model, same prompts (default: random, printed)",
      integer(0, 2 ** 32 - 1),
    )
    .option(
      "--max-new-tokens <n>",
      "cap on new tokens (default: the model's mean caption length)",
      integer(1, 1024),
    )
    .option(
      "--json",
      'print {"subject","arm","seed","prompts":[{"text","tokens","complete"}],"refused":[{"index","code","reason"}]}',
    )
    .action(async (subject: string, flags) => {
      const context = openContext();
      try {
        const result = await promptCommand.execute(context, {
          subject,
          count: flags.count,
          arm: flags.arm,
          modelDir: flags.model,
          seed: flags.seed,
          maxNewTokens: flags.maxNewTokens,
        });
        if (flags.json) {
          const { kind: _kind, ...printed } = result;
          process.stdout.write(`${JSON.stringify(printed)}\n`);
        } else {
          process.stdout.write(`# ${result.arm}, seed ${result.seed}\n`);
          for (const prompt of result.prompts) {
            process.stdout.write(
              `${prompt.text}${prompt.complete ? "" : "  [cut at the token cap]"}\n`,
            );
          }
        }
        for (const refusal of result.refused) {
          process.stderr.write(
            `imagine-bot: prompt ${refusal.index} not written: ${refusal.reason}\n`,
          );
        }
      } finally {
        await context.close();
      }
    });

  registerDataCommands(program);
  registerSafetyCommands(program);
  registerImagineCommand(program);
  registerAgreementCommand(program);
  registerModelsCommands(program);
  registerStudyCommands(program);
  registerWebCommands(program);
  registerVotesCommands(program);
  registerServeCommands(program);
  registerWorkerCommands(program);
  registerDiscordCommand(program);
  registerSlackCommand(program);
  registerEvalCommands(program);
  registerDoctorCommand(program);

  return program;
}

/** Commands that run until stopped: they log to stderr like any service. */
const LONG_RUNNING = new Set(["serve", "web", "worker"]);

/**
 * Where one-shot commands log: a JSON-lines file in the data directory, so that a terminal shows
 * results and one-line errors, and the reference in an error can be looked up in the file.
 */
export function cliLogFile(dataDir: string): string {
  return join(dataDir, "logs", "cli.log");
}

export async function main(argv: string[], logger?: Logger): Promise<number> {
  const program = buildProgram();
  const previousLogFile = process.env.IMAGINE_LOG_FILE;
  let logFile: string | undefined;
  program.hook("preAction", (_program, action) => {
    const verbose = program.opts<{ verbose?: boolean }>().verbose === true;
    if (verbose || LONG_RUNNING.has(action.name()) || previousLogFile !== undefined) return;
    logFile = cliLogFile(dataDirOrDefault());
    process.env.IMAGINE_LOG_FILE = logFile;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommandExit) return error.exitCode;
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (isOperatorFixable(error)) {
      process.stderr.write(`imagine-bot: ${error.message}\n`);
      return EXIT_USAGE;
    }
    const reference = failureReference(error) ?? randomBytes(4).toString("hex");
    const message = error instanceof Error ? error.message : String(error);
    const where = logFile ?? process.env.IMAGINE_LOG_FILE;
    (logger ?? fileLogger(where))?.error({ err: error, reference }, "command failed");
    process.stderr.write(
      `imagine-bot: failed (${isBotError(error) ? error.code : "internal"}): ${message} ` +
        `(reference ${reference}${where === undefined ? "" : `; the full error is in ${where}`})\n`,
    );
    return EXIT_FAILURE;
  } finally {
    if (previousLogFile === undefined) delete process.env.IMAGINE_LOG_FILE;
    else process.env.IMAGINE_LOG_FILE = previousLogFile;
  }
}

/** The data directory as configured, or the default when the configuration does not load. */
function dataDirOrDefault(): string {
  try {
    return loadConfig().config.dataDir;
  } catch {
    return resolve("data");
  }
}

function fileLogger(path: string | undefined): Logger | undefined {
  if (path === undefined) return undefined;
  return createLogger({ level: "error", file: path });
}

/**
 * `imagine-bot safety check --input big.txt | head -2`: once the reader has gone, the rest of the
 * output has nowhere to go. That is the reader's choice, not a failure: exit 0 without a stack.
 */
function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(0);
      throw error;
    });
  }
}

function isEntryPoint(): boolean {
  const invoked = process.argv[1];
  // npm links the bin as a symlink; compare real paths.
  return invoked !== undefined && realpathSync(invoked) === fileURLToPath(import.meta.url);
}

// Run when executed as the bin, not when imported by tests.
if (isEntryPoint()) {
  endQuietlyOnClosedPipe();
  if (existsSync(".env")) process.loadEnvFile(".env");
  process.exitCode = await main(process.argv.slice(2));
}
