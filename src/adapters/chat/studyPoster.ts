/**
 * Posts batch studies in chat (the paper's design): one poster per serve process, handed to
 * StudyManager.setPoster once the adapters run.
 *
 * A study is posted into its first channel by the running adapter that owns that channel id
 * (RunningAdapter.ownsChannel: Discord knows the channels of the servers it is in, Slack
 * channel ids look like C0123ABCD). Each item is imagined with its arm, seed and study id and
 * posted as an ordinary bot message, like /imagine's image: subject, seed and voting legend, no
 * prompt (the study is blind) and no arm anywhere; reactions on it are votes.
 *
 * An item whose prompts were all refused by the explicit-text check is skipped (logged) rather
 * than retried forever; any other failure stops the study's posting until the next start.
 */

import type { BatchPoster } from "../../core/study/manager.js";
import type { PlanItem } from "../../core/study/plan.js";
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
      const channel = study.channels[0];
      if (channel === undefined) {
        throw new Error(`study ${study.id} has no channel to post in (start it with channels)`);
      }
      const adapter = adapters.find((a) => a.postResult && a.ownsChannel?.(channel));
      if (adapter?.postResult === undefined) {
        throw new Error(`no running chat adapter posts to channel ${channel}`);
      }
      const result = await services.pipeline.imagine({
        subject: item.concept,
        arm: item.arm,
        studyId: study.id,
        seed: item.seed,
        requester: `study:${study.id}`,
        platform: adapter.name,
        channel,
        count: 1,
      });
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
