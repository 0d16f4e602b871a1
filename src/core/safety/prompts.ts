/**
 * Generated prompts pass the explicit filter on every path (the pipeline's imagine, the
 * `prompt` command): a blocked prompt is written again with a new derived seed up to
 * PROMPT_RESAMPLES times, then refused.
 */
import { UserError } from "../errors.js";
import type { GeneratedPrompt, PromptGenerator } from "../types.js";
import type { TextFilter } from "./filter.js";

/** How many times a blocked prompt is rewritten with a new seed before it is refused. */
export const PROMPT_RESAMPLES = 3;

/** A seed for the attempt-th rewrite of prompt `index`: deterministic, spread over 32 bits. */
export function derivedSeed(seed: number, index: number, attempt: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface PromptRefusal {
  /** Counts from 1. */
  index: number;
  code: "PROMPT_EXPLICIT";
  reason: string;
}

export interface CheckedPrompts {
  /** The prompts that passed, in order; index counts from 1. */
  prompts: { index: number; prompt: GeneratedPrompt }[];
  refused: PromptRefusal[];
}

export interface CheckedPromptRequest {
  /** Already through gateSubject. */
  subject: string;
  count: number;
  seed: number;
  maxNewTokens?: number;
  signal?: AbortSignal;
}

/** Writes `count` prompts; each blocked one is resampled, then refused. */
export async function writeCheckedPrompts(
  generator: PromptGenerator,
  filter: TextFilter,
  request: CheckedPromptRequest,
): Promise<CheckedPrompts> {
  const { subject, count, seed, maxNewTokens, signal } = request;
  const isBlocked = (prompt: GeneratedPrompt | undefined) =>
    prompt === undefined || filter.check(prompt.text).blocked;
  const first = await generator.generate({ subject, count, seed, maxNewTokens, signal });
  const out: CheckedPrompts = { prompts: [], refused: [] };
  for (let i = 0; i < count; i++) {
    let prompt = first[i];
    for (let attempt = 1; isBlocked(prompt) && attempt <= PROMPT_RESAMPLES; attempt++) {
      const again = await generator.generate({
        subject,
        count: 1,
        seed: derivedSeed(seed, i, attempt),
        maxNewTokens,
        signal,
      });
      prompt = again[0];
    }
    if (prompt === undefined || isBlocked(prompt)) {
      out.refused.push({
        index: i + 1,
        code: "PROMPT_EXPLICIT",
        reason: "The prompt kept matching the explicit-content filter, so it was not drawn.",
      });
    } else {
      out.prompts.push({ index: i + 1, prompt });
    }
  }
  return out;
}

/** The refusal when every prompt written for a subject stayed blocked. */
export function noCleanPromptError(count: number, what = "no image was made"): UserError {
  return new UserError(
    "PROMPT_EXPLICIT",
    count === 1
      ? `The prompt written for that subject kept matching the explicit-content filter, so ${what}. Try a different subject.`
      : `Every prompt written for that subject kept matching the explicit-content filter, so ${what}. Try a different subject.`,
  );
}
