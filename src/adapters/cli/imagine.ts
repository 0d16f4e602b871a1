/**
 * `imagine-bot imagine "<subject>" [-n 1] [--arm NAME | --model DIR] [--seed N] [--out DIR] [--json]`:
 * writes prompts, renders them with the configured image backend, and saves the PNGs (with
 * their A1111 parameters) in the data directory, copied to --out when given. Prints each prompt,
 * seed, file path and timings; progress goes to stderr when it is a terminal. Exits 2 when no
 * image backend is configured, with the registry's message naming what to set.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { userInfo } from "node:os";
import { basename, join, resolve } from "node:path";
import { type Command, Option } from "commander";
import type { CommandContext } from "../../commands/command.js";
import { imagineCommand } from "../../commands/imagine.js";
import { BotError, UserError } from "../../core/errors.js";
import { createImageBackend } from "../../core/image/registry.js";
import { saveImage } from "../../core/image/store.js";
import {
  createPipeline,
  failureReference,
  type ImagineProgress,
  type ImagineResult,
} from "../../core/pipeline.js";
import { PromptArms } from "../../core/prompt/arms.js";
import { loadExplicitFilter } from "../../core/safety/index.js";
import { openVoteStore } from "../../core/votes/index.js";
import { openConfigured } from "./context.js";
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
  const { config, secrets, logger } = openConfigured();
  // First, so that a missing backend is reported before any model loads.
  const backend = createImageBackend(config, secrets, { logger });
  const arms = new PromptArms(config, secrets, logger);
  const filter = loadExplicitFilter(config.safety);
  // Generation records go where votes will find them (votes.storeUrl, SQLite by default).
  const store = await openVoteStore(config.votes.storeUrl, { dataDir: config.dataDir, logger });
  const pipeline = createPipeline({
    config,
    arms,
    backend,
    filter,
    store,
    saveImage,
    logger,
  });
  const context: CommandContext = {
    config,
    arms,
    logger,
    pipeline,
    invocation: { platform: "cli", user: `cli:${currentUser()}` },
    onProgress: process.stderr.isTTY ? printProgress : undefined,
  };
  try {
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
      if (error instanceof UserError || !(error instanceof Error) || reference === undefined) {
        throw error;
      }
      // The pipeline logged the error under its reference; say which.
      const code = error instanceof BotError ? error.code : "GENERATION_FAILED";
      throw new BotError(code, `${error.message} (logged as ${reference})`, { cause: error });
    }
    await report(result, config.dataDir, flags);
  } finally {
    await pipeline.close();
    await Promise.allSettled([arms.close(), backend.close(), store.close()]);
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

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return "local";
  }
}
