/**
 * What chat adapters say, platform-neutral: progress lines, the reply under an image, results of
 * commands without images, refusals and failures. Each adapter formats these its own way
 * (Discord markdown, Slack mrkdwn); nothing here names the arm.
 */
import { randomBytes } from "node:crypto";
import type { PromptsResult } from "../../commands/command.js";
import { isBotError, isRequesterError, UserError } from "../../core/errors.js";
import { failureReference, type ImagineProgress, type ImagineResult } from "../../core/pipeline.js";
import { studyPostView } from "../../core/study/post.js";
import type { Generation, Logger } from "../../core/types.js";
import type { EmojiScale } from "./votes.js";

/** The line shown while a job moves, or undefined for "done" and "failed" (replies follow). */
export function progressText(event: ImagineProgress): string | undefined {
  switch (event.kind) {
    case "queued":
      return `Queued (position ${event.position})…`;
    case "writing-prompt":
      return "Writing the prompt…";
    case "rendering": {
      const steps = event.step !== undefined && event.steps ? ` ${event.step}/${event.steps}` : "";
      return event.of > 1
        ? `Rendering image ${event.index} of ${event.of}${steps ? ` (step${steps})` : ""}…`
        : `Rendering${steps}…`;
    }
    default:
      return undefined;
  }
}

/** A study is running for this image: raters must not see the prompt (it hints at the arm). */
export function isBlind(generation: Pick<Generation, "studyId">): boolean {
  return generation.studyId !== undefined;
}

/** One image as a chat reply. */
export interface ImageReply {
  generationId: string;
  subject: string;
  /** Absent while a blind study runs. */
  prompt?: string;
  /**
   * Absent for a study image: the arms of one concept and prompt slot share a seed, so showing
   * it would let raters pick out each matched set.
   */
  seed?: number;
  /** A batch study's "Survey 1 · image 7", so raters know what they are rating. */
  label?: string;
  /** A file name without the arm: `imagine-<first 8 hex of the id>.png`. */
  fileName: string;
  /** Alt text: the subject only. */
  altText: string;
  png: Buffer;
}

/** "imagine-1a2b3c4d.png": never the arm, the prompt or the subject. */
export function imageFileName(generation: Pick<Generation, "id">): string {
  const hex = generation.id.replace(/[^0-9a-f]/gi, "").slice(0, 8) || "image";
  return `imagine-${hex.toLowerCase()}.png`;
}

/** What each image's post shows; for a study image, only what core's studyPostView allows. */
export function imageReplies(result: ImagineResult): ImageReply[] {
  return result.generations.map(({ generation, png }) => {
    const study = studyPostView(generation);
    const shown =
      study === undefined
        ? { prompt: generation.prompt, seed: generation.seed }
        : {
            ...(study.showPrompt ? { prompt: generation.prompt } : {}),
            ...(study.showSeed ? { seed: generation.seed } : {}),
            ...(study.label === undefined ? {} : { label: study.label }),
          };
    return {
      generationId: generation.id,
      subject: generation.subject,
      ...shown,
      fileName: imageFileName(generation),
      altText: generation.subject,
      png,
    };
  });
}

/**
 * "Rate: 1️⃣–4️⃣ quality · 🔴🟠🟡🟢 faithfulness". `show` formats one reaction (Slack: `:one:`).
 */
export function votingLegend(
  scale: EmojiScale,
  show: (emoji: string) => string = (e) => e,
): string {
  const quality = scale.quality;
  return `Rate: ${show(quality[0] as string)}–${show(quality[quality.length - 1] as string)} quality · ${scale.faithfulness.map(show).join("")} faithfulness`;
}

/** What to tell the person about prompts that were refused while others were drawn. */
export function refusalNotes(result: ImagineResult): string[] {
  return result.refused.map((refusal) => `Image ${refusal.index} was not made: ${refusal.reason}`);
}

/** How a failed command is reported. */
export interface FailureReply {
  /** A refusal (the requester's own mistake, shown only to them) or a failure (public). */
  kind: "refusal" | "failure";
  text: string;
  /** The reference the failure was logged under (failures only). */
  reference?: string;
}

/**
 * A requester's mistake as its own message; anything else as a short failure naming the
 * reference it was logged under: the pipeline's own for a failed job, otherwise a new one logged
 * here. Operator problems (configuration, model files) never show their message: it may hold
 * server paths and settings. The pipeline logs those as refusals, so they are logged again here,
 * as errors, under the same reference.
 */
export function failureReply(error: unknown, logger: Logger, command: string): FailureReply {
  if (isRequesterError(error)) return { kind: "refusal", text: error.message };
  const known = failureReference(error);
  const reference = known ?? randomBytes(4).toString("hex");
  if (known === undefined || error instanceof UserError) {
    logger.error({ err: error, reference, command }, "command failed");
  }
  return {
    kind: "failure",
    text: `Sorry, that failed: ${shownReason(error, command)} (reference ${reference})`,
    reference,
  };
}

/** What a requester may be told about a failure that is not their mistake. */
function shownReason(error: unknown, command: string): string {
  if (isBotError(error) && (error.code === "DEADLINE" || error.code === "QUEUE_CLOSED")) {
    return error.message;
  }
  return command === "imagine"
    ? "Something went wrong while making the image."
    : "Something went wrong.";
}

/** The prompts of a prompt command as lines of text (each platform escapes and frames them). */
export function promptLines(result: PromptsResult): string[] {
  return [
    `Prompts for "${result.subject}" (seed ${result.seed}):`,
    ...result.prompts.map(
      (prompt, i) => `${i + 1}. ${prompt.text}${prompt.complete ? "" : " [cut at the token cap]"}`,
    ),
    ...result.refused.map(
      (refusal) => `Prompt ${refusal.index} was not written: ${refusal.reason}`,
    ),
  ];
}
