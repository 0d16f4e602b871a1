/**
 * Posts batch studies in chat (the paper's design): one poster per serve process, handed to
 * StudyManager.setPoster once the adapters run.
 *
 * A study is posted into its survey's channel (channels[s − 1] for survey s when the study has one
 * per survey, else its first) by the running adapter that owns that channel id
 * (RunningAdapter.ownsChannel: Discord knows the channels of the servers it is in, Slack
 * channel ids look like C0123ABCD). Each item is imagined with its arm, seed, study id and plan
 * item and posted as an ordinary bot message: subject, "Survey s · image i" and the voting
 * legend — no prompt, no seed (matched images share one) and no arm anywhere; reactions on it
 * are votes.
 *
 * An item whose prompts were all refused by the explicit-text check is skipped (logged) rather
 * than retried forever; any other failure stops the study's posting until the next start.
 */

import { confirmDelivery } from "../../core/pipeline.js";
import type { BatchPoster } from "../../core/study/manager.js";
import type { PlanItem } from "../../core/study/plan.js";
import { surveyChannel } from "../../core/study/post.js";
import type { StudyRecord } from "../../core/study/record.js";
import type { ChatServices, RunningAdapter } from "./services.js";

/** The default pace of a batch study: one item a minute (start to start). */
export const DEFAULT_STUDY_INTERVAL_MS = 60_000;

export interface StudyPosterOptions {
  /** Milliseconds from one item's start to the next's (default one minute). */
  intervalMs?: number;
}

export function studyPoster(
  adapters: readonly RunningAdapter[],
  services: Pick<ChatServices, "pipeline" | "logger">,
  options: StudyPosterOptions = {},
): BatchPoster {
  const logger = services.logger.child({ component: "study-poster" });
  return {
    intervalMs: options.intervalMs ?? DEFAULT_STUDY_INTERVAL_MS,
    async post(item: PlanItem, study: StudyRecord): Promise<void> {
      // One channel per survey when the study has them, so raters can be pointed at theirs.
      const channel = surveyChannel(study, item);
      if (channel === undefined) {
        throw new Error(`study ${study.id} has no channel to post in (start it with channels)`);
      }
      const adapter = adapters.find((a) => a.postResult && a.ownsChannel?.(channel));
      if (adapter?.postResult === undefined) {
        throw new Error(`no running chat adapter posts to channel ${channel}`);
      }
      // Confirmed at once, posted or not: a study's own resumption (resumePosting) posts the
      // items it has no message for, so a restarted chat process must not post them as well.
      const result = await confirmed(
        services.pipeline.imagine({
          subject: item.concept,
          arm: item.arm,
          studyId: study.id,
          studyItem: item.id,
          seed: item.seed,
          requester: `study:${study.id}`,
          platform: adapter.name,
          channel,
          count: 1,
        }),
      );
      if (result.generations.length === 0) {
        // Never the arm in logs that chat users might see quoted: the item id is enough.
        logger.warn(
          { studyId: study.id, item: item.id, refused: result.refused.length },
          "study item not posted: every prompt was refused",
        );
        return;
      }
      const messages = await adapter.postResult(channel, result);
      logger.info(
        { studyId: study.id, item: item.id, messages: messages.map((m) => m.ref) },
        "study item posted",
      );
    },
    onProgress(studyId, progress) {
      logger.info({ studyId, ...progress }, "study progress");
    },
  };
}

/** The outcome, once it is confirmed delivered (the study, not the queue, owns its posting). */
async function confirmed<T>(outcome: Promise<T>): Promise<T> {
  const settled = await outcome.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  await confirmDelivery("value" in settled ? settled.value : settled.error);
  if ("error" in settled) throw settled.error;
  return settled.value;
}
