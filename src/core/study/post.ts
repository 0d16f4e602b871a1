/**
 * What a chat post of a study image may show. Raters must not be able to tell the arm, nor
 * which images are a matched set: the arms of one (concept, prompt slot) share a seed, so a
 * study post shows no seed, no prompt and no arm — only the subject and, in a batch study,
 * the survey and position the rater is asked to rate. The chat layer calls these; it never
 * decides on its own what a study post may carry.
 */
import type { Generation } from "../types.js";
import type { PlanItem } from "./plan.js";
import { parsePlanItemId } from "./plan.js";
import type { StudyRecord } from "./record.js";

export interface StudyPostView {
  subject: string;
  /** "Survey 1 · image 7" for a batch study's image; absent for a live study's. */
  label?: string;
  /** 1-based survey number, for adapters that route or tag by survey. */
  survey?: number;
  /** Never shown in a study post (always false: the seed identifies matched images). */
  showSeed: false;
  /** Never shown while the study runs (the prompt hints at the arm). */
  showPrompt: false;
}

/**
 * What a post of this generation may show, or undefined when it is not a study image (then
 * the ordinary /imagine reply applies: subject, prompt and seed).
 */
export function studyPostView(
  generation: Pick<Generation, "studyId" | "studyItem" | "subject">,
): StudyPostView | undefined {
  if (generation.studyId === undefined) return undefined;
  const item =
    generation.studyItem === undefined ? undefined : parsePlanItemId(generation.studyItem);
  return {
    subject: generation.subject,
    ...(item === undefined
      ? {}
      : { label: `Survey ${item.survey} · image ${item.position}`, survey: item.survey }),
    showSeed: false,
    showPrompt: false,
  };
}

/**
 * The channel a batch study's item is posted to: with one channel per survey (channels[s − 1]
 * for survey s), each survey goes to its own channel, so its raters can be pointed at it;
 * otherwise everything goes to the first channel. Undefined when the study has no channel.
 */
export function surveyChannel(
  study: Pick<StudyRecord, "channels">,
  item: Pick<PlanItem, "survey">,
): string | undefined {
  return study.channels[item.survey - 1] ?? study.channels[0];
}
