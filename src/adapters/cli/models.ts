/**
 * `imagine-bot models …`: model directories from the Hugging Face Hub. A pulled model is also
 * registered as an arm of its folder's name in <data dir>/pulled-arms.json, so that
 * `prompt --arm NAME` uses it at once (a configured arm of the same name still wins).
 */
import { join, resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { loadConfig, PACKAGE_ROOT } from "../../core/config.js";
import { formatDuration } from "../../core/data/progress.js";
import type { FileEvent, PullResult } from "../../core/models/pull.js";
import { defaultPython, formatBytes, MODEL_ALIASES, pullModel } from "../../core/models/pull.js";
import { PULLED_ARM_NAME, registerPulledArm } from "../../core/models/registry.js";

export const DEFAULT_MODELS_DIR = join(PACKAGE_ROOT, "models");

export function registerModelsCommands(program: Command): Command {
  const models = program
    .command("models")
    .description("Download model directories from the Hugging Face Hub");
  const aliases = Object.entries(MODEL_ALIASES)
    .map(([name, alias]) => `${name} = ${alias.repo} (${alias.description})`)
    .join("; ");
  models
    .command("pull")
    .description(
      "Download a model directory (ONNX decoder + imagine-model.json) into the models directory, " +
        "show its licence and register it as an arm (prompt --arm NAME); a Stable Diffusion ONNX " +
        "export (diffusers layout: sd-turbo, sd21) is fetched for IMAGE_BACKEND=local. Resumable: run it again " +
        "after an interruption. Repositories with only PyTorch weights are converted with " +
        "training/export_onnx.py (IMAGINE_PYTHON, default /usr/bin/python3, needs torch); " +
        "a Hugging Face merged decoder is unmerged so onnxruntime holds its weights once. " +
        "HF_TOKEN for gated or private repositories, HF_ENDPOINT for a mirror.",
    )
    .argument("[model]", `a built-in name (${aliases}) or a repository id owner/name`, "gpt2")
    .option("--revision <rev>", "branch, tag or commit id", "main")
    .option("--dir <dir>", `models directory (default ${DEFAULT_MODELS_DIR})`)
    .option(
      "--name <folder>",
      "folder name inside the models directory (default: the model's name)",
    )
    .option(
      "--mean-caption-tokens <n>",
      "cap on new tokens written into imagine-model.json for a model without one (default 20)",
      positiveNumber,
    )
    .option("--force", "replace an existing folder that models pull did not write")
    .option(
      "--keep-weights",
      "for a repository converted from PyTorch weights, keep them beside the ONNX (a checkpoint training/finetune.py --base can start from)",
    )
    .option("--no-register", "do not register the model as an arm in <data dir>/pulled-arms.json")
    .option(
      "--json",
      'print {"name","repo","revision","dir","license","files":[{"path","bytes","sha256","skipped"(+"unmergedFrom")}],"arm","registry"} (+"convertedFrom")',
    )
    .action(async (model: string, flags) => {
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      const progress = createPullProgress(process.stderr);
      try {
        const result = await pullModel({
          source: model,
          revision: flags.revision,
          modelsDir: flags.dir ?? DEFAULT_MODELS_DIR,
          name: flags.name,
          force: flags.force === true,
          meanCaptionTokens: flags.meanCaptionTokens,
          endpoint: process.env.HF_ENDPOINT?.trim() || undefined,
          token: process.env.HF_TOKEN?.trim() || undefined,
          signal: controller.signal,
          onFile: progress.onFile,
          converter: { python: defaultPython() },
          keepWeights: flags.keepWeights === true,
        });
        progress.done();
        let registration: Registration | undefined;
        try {
          // An image model is not a prompt arm; summary() says how to render with it.
          registration =
            flags.register === false || result.kind === "stable-diffusion"
              ? undefined
              : await register(result);
        } catch (error) {
          // The model is in place; only the shortcut is missing.
          process.stderr.write(
            `imagine-bot: pulled, but not registered as an arm: ${(error as Error).message}\n`,
          );
        }
        process.stdout.write(
          flags.json
            ? `${JSON.stringify({ ...result, arm: registration?.arm ?? null, registry: registration?.file ?? null })}\n`
            : summary(result, registration),
        );
      } catch (error) {
        progress.done();
        if (controller.signal.aborted) {
          process.stderr.write("imagine-bot: interrupted; run the same command again to resume.\n");
        }
        throw error;
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
  return models;
}

function positiveNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) {
    throw new InvalidArgumentError("expected a positive number");
  }
  return parsed;
}

interface Registration {
  arm: string;
  file: string;
  /** A configured arm of the same name, which takes precedence. */
  shadowed: boolean;
}

/** The data directory as configured; ./data (the default) when the configuration does not load. */
function dataDir(): { dir: string; configured: Record<string, unknown> } {
  try {
    const { config } = loadConfig();
    return { dir: config.dataDir, configured: config.arms };
  } catch {
    return { dir: resolve("data"), configured: {} };
  }
}

async function register(result: PullResult): Promise<Registration | undefined> {
  const arm = result.name.toLowerCase();
  if (!PULLED_ARM_NAME.test(arm)) return undefined;
  const { dir, configured } = dataDir();
  const file = await registerPulledArm(dir, arm, {
    kind: "onnx",
    modelDir: result.dir,
    repo: result.repo,
    revision: result.revision,
    license: result.license,
    pulledAt: new Date().toISOString(),
  });
  return { arm, file, shadowed: Object.hasOwn(configured, arm) };
}

function summary(result: PullResult, registration: Registration | undefined): string {
  const width = Math.max(...result.files.map((file) => file.path.length));
  const lines = result.files.map(
    (file) =>
      `  ${file.skipped ? "present " : "fetched "} ${file.path.padEnd(width)}  ${formatBytes(file.bytes)}`,
  );
  const unmerged = result.files.filter((file) => file.unmergedFrom);
  const converted =
    (result.convertedFrom
      ? `Converted from ${result.convertedFrom} with training/export_onnx.py.\n`
      : "") +
    unmerged
      .map(
        (file) =>
          `Unmerged ${file.path} (Hugging Face's merged decoder) so onnxruntime holds its weights once.\n`,
      )
      .join("");
  const license = result.license
    ? `Licence: ${result.license} (see https://huggingface.co/${result.repo}); you must follow its terms.\n`
    : `Licence: not stated on the Hub; check https://huggingface.co/${result.repo} before you use it.\n`;
  let use: string;
  if (result.kind === "stable-diffusion") {
    use = `Render with it: IMAGE_BACKEND=local SD_MODEL_DIR=${result.dir} imagine-bot imagine "a lighthouse"\n`;
  } else if (!registration) {
    use = `Use it with --model ${result.dir}, IMAGINE_MODEL_DIR or an arm's modelDir${PULLED_ARM_NAME.test(result.name.toLowerCase()) ? "" : ` (pull with --name <lowercase-name> to register it as an arm)`}.\n`;
  } else if (registration.shadowed) {
    use = `Registered as arm "${registration.arm}" in ${registration.file}, but the configuration already has an arm of that name, which wins: use --model ${result.dir}, or pull with another --name.\n`;
  } else {
    use = `Registered as arm "${registration.arm}" in ${registration.file}: imagine-bot prompt "a lighthouse" --arm ${registration.arm}\n`;
  }
  return `${result.repo}@${result.revision.slice(0, 12)} → ${result.dir}\n${lines.join("\n")}\n${converted}${license}${use}`;
}

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/**
 * One updating line per file on a terminal (bytes, percent, MB/s, ETA), left as a finished line
 * when the file is done; nothing when the stream is not a TTY.
 */
export function createPullProgress(
  stream: ProgressStream,
  options: { intervalMs?: number; now?: () => number } = {},
): { onFile?: (event: FileEvent) => void; done(): void } {
  if (!stream.isTTY) return { done() {} };
  const now = options.now ?? (() => performance.now());
  const interval = options.intervalMs ?? 200;
  let started = 0;
  let last = Number.NEGATIVE_INFINITY;
  let open = false;
  const line = (text: string) => {
    const width = Math.max(20, (stream.columns || 100) - 1);
    stream.write(`\r${text.slice(0, width)}\u001b[K`);
    open = true;
  };
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  return {
    onFile(event) {
      if (event.kind === "start") {
        started = now();
        last = Number.NEGATIVE_INFINITY;
        line(
          `${event.path}  ${event.resumedFrom > 0 ? `resuming at ${mb(event.resumedFrom)} MB` : "starting"}`,
        );
      } else if (event.kind === "progress") {
        const t = now();
        const { path, bytes, total, resumedFrom } = event.progress;
        if (t - last < interval && bytes < total) return;
        last = t;
        const seconds = (t - started) / 1000;
        const rate = seconds > 0 ? (bytes - resumedFrom) / seconds : 0;
        const eta = rate > 0 ? (total - bytes) / rate : Number.NaN;
        const percent = total > 0 ? ((bytes / total) * 100).toFixed(1) : "100.0";
        line(
          `${path}  ${mb(bytes)}/${mb(total)} MB  ${percent}%  ${(rate / 1e6).toFixed(1)} MB/s  ETA ${formatDuration(eta)}`,
        );
      } else if (event.kind === "convert") {
        line(
          `converting ${event.from} to ONNX with training/export_onnx.py (minutes for large models)`,
        );
        stream.write("\n");
        open = false;
      } else if (event.kind === "unmerge") {
        line(`${event.path}  checking for a merged decoder to unmerge (weights held once)`);
      } else {
        const { file } = event;
        const state = file.skipped
          ? "already present"
          : file.unmergedFrom
            ? "unmerged"
            : "verified";
        line(`${file.path}  ${formatBytes(file.bytes)}  ${state}`);
        stream.write("\n");
        open = false;
      }
    },
    done() {
      if (open) stream.write("\r\u001b[K");
      open = false;
    },
  };
}
