/**
 * Pulled arms: `models pull` records each model it lands in `<dataDir>/pulled-arms.json`, and
 * PromptArms offers them beside the configured arms, so `prompt --arm gpt2-xl` works right
 * after `models pull gpt2-xl` without editing a config file. A configured arm of the same name
 * wins: the deployer's file is the authority, the registry only fills gaps.
 *
 * The file is rewritten whole through a temporary file and a rename, so a reader never sees a
 * half-written registry.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { ArmConfig } from "../config.js";
import { UserError } from "../errors.js";

export const PULLED_ARMS_FILE = "pulled-arms.json";

/** The configuration's arm-name rule (src/core/config.ts), so a registered arm is addressable. */
export const PULLED_ARM_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const entrySchema = z
  .object({
    kind: z.literal("onnx"),
    /** Absolute path of the pulled model directory. */
    modelDir: z.string().min(1),
    repo: z.string().min(1),
    revision: z.string().min(1),
    /** As the Hub or the alias table states it; null when neither says. */
    license: z.string().nullable(),
    pulledAt: z.string(),
  })
  .strict();

const registrySchema = z
  .object({
    version: z.literal(1),
    arms: z.record(z.string().regex(PULLED_ARM_NAME), entrySchema),
  })
  .strict();

export type PulledArm = z.infer<typeof entrySchema>;
export type PulledArms = Record<string, PulledArm>;

export function pulledArmsFile(dataDir: string): string {
  return join(dataDir, PULLED_ARMS_FILE);
}

/** The registry's entries; none when the file does not exist. */
export function readPulledArmRegistry(dataDir: string): PulledArms {
  const file = pulledArmsFile(dataDir);
  if (!existsSync(file)) return {};
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${file} is not valid JSON (${(error as Error).message}). Delete it and pull the models again, or fix it by hand.`,
    );
  }
  const parsed = registrySchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${file} is not a pulled-arms registry (${issues}). Delete it and pull the models again.`,
    );
  }
  return parsed.data.arms;
}

/** Pulled arms as arm configurations, for PromptArms. */
export function readPulledArms(dataDir: string): Record<string, ArmConfig> {
  const arms: Record<string, ArmConfig> = {};
  for (const [name, entry] of Object.entries(readPulledArmRegistry(dataDir))) {
    arms[name] = { kind: "onnx", modelDir: entry.modelDir };
  }
  return arms;
}

/** Adds or replaces one arm; returns the registry file. */
export async function registerPulledArm(
  dataDir: string,
  name: string,
  entry: PulledArm,
): Promise<string> {
  if (!PULLED_ARM_NAME.test(name)) {
    throw new UserError(
      "USAGE",
      `"${name}" cannot be an arm name (lowercase letters, digits, "-" and "_", at most 32, starting with a letter or digit). Pull again with --name.`,
    );
  }
  const file = pulledArmsFile(dataDir);
  const arms = { ...readPulledArmRegistry(dataDir), [name]: entrySchema.parse(entry) };
  const sorted = Object.fromEntries(Object.entries(arms).sort(([a], [b]) => a.localeCompare(b)));
  await mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify({ version: 1, arms: sorted }, null, 2)}\n`);
  await rename(temporary, file);
  return file;
}
