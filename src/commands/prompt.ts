import { randomInt } from "node:crypto";
import { z } from "zod";
import {
  explicitFilterFor,
  gateSubject,
  noCleanPromptError,
  writeCheckedPrompts,
} from "../core/safety/index.js";
import type { Command, PromptsResult } from "./command.js";
import { armOption, modelDirOption, seedOption, subjectOption } from "./options.js";

const options = z.object({
  subject: subjectOption,
  count: z.number().int().min(1).max(16).optional().describe("how many prompts to write"),
  arm: armOption,
  modelDir: modelDirOption,
  seed: seedOption("prompts"),
  maxNewTokens: z.number().int().min(1).max(1024).optional().describe("cap on new tokens"),
});

export type { PromptsResult as PromptResult } from "./command.js";

/**
 * Writes prompts for a subject without rendering them: the prompt engine on its own, behind the
 * same subject gate and explicit filter as imagine (resample, then refuse).
 */
export const promptCommand = {
  name: "prompt",
  description: "Write text-to-image prompts for a subject",
  options,
  async execute(context, input): Promise<PromptsResult> {
    const filter = explicitFilterFor(context.config.safety);
    const subject = gateSubject(input.subject, {
      maxLength: context.config.prompt.maxSubjectLength,
      filter,
    });
    const arm = input.modelDir ? `model:${input.modelDir}` : (input.arm ?? context.arms.defaultArm);
    const generator = input.modelDir
      ? await context.arms.forModelDir(input.modelDir)
      : await context.arms.get(input.arm);
    // A seed is always chosen and reported, so any output can be reproduced.
    const seed = input.seed ?? randomInt(2 ** 32 - 1);
    const count = input.count ?? context.config.prompt.count;
    const started = performance.now();
    const checked = await writeCheckedPrompts(generator, filter, {
      subject,
      count,
      seed,
      maxNewTokens: input.maxNewTokens,
    });
    if (checked.prompts.length === 0) throw noCleanPromptError(count, "no prompt is shown");
    const prompts = checked.prompts.map(({ prompt }) => prompt);
    context.logger.debug(
      { arm, count: prompts.length, ms: Math.round(performance.now() - started) },
      "prompts written",
    );
    if (checked.refused.length > 0) {
      context.logger.info(
        { arm, refused: checked.refused.length },
        "prompts refused after resamples",
      );
    }
    return { kind: "prompts", subject, arm, seed, prompts, refused: checked.refused };
  },
} satisfies Command<typeof options, PromptsResult>;
