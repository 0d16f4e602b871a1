import { randomInt } from "node:crypto";
import { z } from "zod";
import { validateSubject } from "../core/prompt/subject.js";
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

/** Writes prompts for a subject without rendering them: the prompt engine on its own. */
export const promptCommand = {
  name: "prompt",
  description: "Write text-to-image prompts for a subject",
  options,
  async execute(context, input): Promise<PromptsResult> {
    const subject = validateSubject(input.subject, context.config.prompt.maxSubjectLength);
    const arm = input.modelDir ? `model:${input.modelDir}` : (input.arm ?? context.arms.defaultArm);
    const generator = input.modelDir
      ? await context.arms.forModelDir(input.modelDir)
      : await context.arms.get(input.arm);
    // A seed is always chosen and reported, so any output can be reproduced.
    const seed = input.seed ?? randomInt(2 ** 32 - 1);
    const started = performance.now();
    const prompts = await generator.generate({
      subject,
      count: input.count ?? context.config.prompt.count,
      seed,
      maxNewTokens: input.maxNewTokens,
    });
    context.logger.debug(
      { arm, count: prompts.length, ms: Math.round(performance.now() - started) },
      "prompts written",
    );
    return { kind: "prompts", subject, arm, seed, prompts };
  },
} satisfies Command<typeof options, PromptsResult>;
