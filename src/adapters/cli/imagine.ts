/**
 * `imagine-bot imagine "<subject>" [-n 1] [--arm NAME | --model DIR] [--seed N] [--out DIR] [--json]`:
 * writes prompts, renders them with the configured image backend, and saves the PNGs (with
 * their A1111 parameters) in the data directory, copied to --out when given. Prints each prompt,
 * seed, file path and timings; progress goes to stderr when it is a terminal. Exits 2 when no
 * image backend is configured, with the registry's message naming what to set.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { type Command, Option } from "commander";
import { openApp } from "../../app/index.js";
import type { CommandContext } from "../../commands/command.js";
import { imagineCommand } from "../../commands/imagine.js";
import { BotError, isOperatorFixable } from "../../core/errors.js";
import { failureReference, type ImagineProgress, type ImagineResult } from "../../core/pipeline.js";
import { cliInvocation } from "./context.js";
import { integer } from "./parse.js";

interface ImagineFlags {
  count?: number;
  arm?: string;
  model?: string;
  seed?: number;
  out?: string;
  json?: boolean;
}

export function registerImagineCommand(program: Command): Command {
  return program
    .command("imagine")
    .description(
      "Write a prompt for a subject and render it with the configured image backend\n" +
        "(IMAGE_BACKEND=huggingface|automatic1111|comfyui). PNGs are saved in the data directory.",
    )
    .argument("<subject>", 'what the image should show, e.g. "a lighthouse"')
    .option("-n, --count <n>", "how many images, one prompt each", integer(1, 16), 1)
    .option("--arm <name>", "a configured arm (default: the configured defaultArm)")
    .addOption(new Option("--model <dir>", "a model directory instead of an arm").conflicts("arm"))
    .option(
      "--seed <n>",
      "seeds the prompts; image i uses seed + i (default: random, printed)",
      integer(0, 2 ** 32 - 1),
    )
    .option("--out <dir>", "copy the PNGs into this folder")
    .option("--json", 'print {"subject","images":[{"prompt","seed","path","timings"}]}')
    .action(async (subject: string, flags: ImagineFlags) => {
      await runImagine(subject, flags);
    });
}

async function runImagine(subject: string, flags: ImagineFlags): Promise<void> {
  const app = openApp();
  try {
    // Generation records go where votes will find them (votes.storeUrl, SQLite by default).
    const context: CommandContext = {
      config: app.config,
      arms: app.arms,
      logger: app.logger,
      pipeline: await app.pipeline(),
      invocation: cliInvocation(),
      onProgress: process.stderr.isTTY ? printProgress : undefined,
    };
    let result: ImagineResult;
    try {
      result = await imagineCommand.execute(context, {
        subject,
        count: flags.count,
        arm: flags.arm,
        modelDir: flags.model,
        seed: flags.seed,
      });
    } catch (error) {
      const reference = failureReference(error);
      if (isOperatorFixable(error) || !(error instanceof Error) || reference === undefined) {
        throw error;
      }
      // The pipeline logged the error under its reference; say which.
      const code = error instanceof BotError ? error.code : "GENERATION_FAILED";
      throw new BotError(code, `${error.message} (logged as ${reference})`, { cause: error });
    }
    await report(result, app.config.dataDir, flags);
  } finally {
    await app.close();
  }
}

async function report(result: ImagineResult, dataDir: string, flags: ImagineFlags): Promise<void> {
  const out = flags.out === undefined ? undefined : resolve(flags.out);
  if (out !== undefined) await mkdir(out, { recursive: true });
  const images = [];
  for (const { generation, path } of result.generations) {
    const stored = resolve(dataDir, path);
    let shown = stored;
    if (out !== undefined) {
      shown = join(out, basename(path));
      await copyFile(stored, shown);
    }
    images.push({
      prompt: generation.prompt,
      seed: generation.seed,
      path: shown,
      timings: generation.timings,
    });
  }
  for (const refusal of result.refused) {
    process.stderr.write(`imagine-bot: image ${refusal.index} not made: ${refusal.reason}\n`);
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ subject: result.subject, images })}\n`);
    return;
  }
  process.stdout.write(`# ${result.subject}, seed ${result.seed}\n`);
  for (const image of images) {
    const t = image.timings;
    process.stdout.write(
      `${image.prompt}\n  seed ${image.seed}  ${image.path}\n` +
        `  queued ${seconds(t.queuedMs)}, prompt ${seconds(t.promptMs)}, render ${seconds(t.renderMs)}, total ${seconds(t.totalMs)}\n`,
    );
  }
}

function printProgress(event: ImagineProgress): void {
  const line =
    event.kind === "queued"
      ? `queued, position ${event.position}`
      : event.kind === "writing-prompt"
        ? "writing the prompt…"
        : event.kind === "rendering"
          ? `rendering ${event.index} of ${event.of}…`
          : event.kind === "done"
            ? "done"
            : `failed: ${event.reason} (ref ${event.reference})`;
  process.stderr.write(`${line}\n`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
