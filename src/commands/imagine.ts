import { z } from "zod";
import { BotError, UserError } from "../core/errors.js";
import type { Command, ImagesResult } from "./command.js";
import { armOption, modelDirOption, seedOption, subjectOption } from "./options.js";

const options = z.object({
  subject: subjectOption,
  count: z.number().int().min(1).max(16).optional().describe("how many images, one per prompt"),
  arm: armOption,
  modelDir: modelDirOption,
  seed: seedOption("prompts and images"),
});

/**
 * Makes images for a subject: the pipeline writes one prompt per image, renders, saves and
 * records them. The result holds the arm only inside each generation record, which adapters
 * must not show while a study runs.
 */
export const imagineCommand = {
  name: "imagine",
  description: "Write a prompt for a subject and render it",
  options,
  async execute(context, input): Promise<ImagesResult> {
    if (!context.pipeline) {
      throw new BotError("GENERATION_FAILED", "imagine needs a pipeline in the command context");
    }
    const invocation = context.invocation ?? { platform: "cli", user: "cli:cli" };
    const parsed = options.parse(input);
    // In a channel of a running live study the arm is chosen blind and balanced, never by the
    // person asking. (A refused subject still uses up its slot; balance holds over assignments.)
    const assignment = await context.studies?.assignArm(invocation.channel);
    if (assignment && (parsed.arm !== undefined || parsed.modelDir !== undefined)) {
      throw new UserError(
        "USAGE",
        "A blind study is running in this channel, so the prompt model is chosen for you: leave out the arm.",
      );
    }
    const result = await context.pipeline.imagine(
      {
        subject: parsed.subject,
        requester: invocation.user,
        platform: invocation.platform,
        server: invocation.server,
        channel: invocation.channel,
        replyHandle: invocation.replyHandle,
        arm: assignment?.arm ?? parsed.arm,
        studyId: assignment?.studyId,
        modelDir: parsed.modelDir,
        count: parsed.count ?? 1,
        seed: parsed.seed,
      },
      context.onProgress,
    );
    return { kind: "images", ...result };
  },
} satisfies Command<typeof options, ImagesResult>;
