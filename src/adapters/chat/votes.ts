/**
 * Reactions as votes, for every chat adapter: which reaction means which score (config.votes:
 * index 0 = score 1), the reactions the bot adds under an image, and the glue from "this person
 * added or removed this reaction on this message" to the vote store.
 *
 * The emoji ↔ score mapping itself is src/core/votes' scoreOfReaction (variation selectors, Slack
 * skin tones and custom emoji handled there); this module gives it a scale-only interface.
 */
import type { Config } from "../../core/config.js";
import type { Ballot, Dimension, Generation, VoteEvent, VoteStore } from "../../core/types.js";
import { DIMENSIONS } from "../../core/types.js";
import { type ReactionPlatform, scoreOfReaction } from "../../core/votes/index.js";

/** The four reactions of each scale, score 1 first (config.votes.discordEmoji / slackEmoji). */
export type EmojiScale = Config["votes"]["discordEmoji"];

/** The vote a reaction means on a platform, or undefined for any other reaction. */
export function reactionVote(
  emoji: string,
  scale: EmojiScale,
  platform: "discord" | "slack" = "discord",
): { dimension: Dimension; score: number } | undefined {
  return scoreOfReaction(platform, emoji, scale);
}

/** The reaction for a score. */
export function reactionFor(dimension: Dimension, score: number, scale: EmojiScale): string {
  const emoji = scale[dimension][score - 1];
  if (emoji === undefined) throw new RangeError(`no reaction for ${dimension} ${score}`);
  return emoji;
}

/** The reactions the bot adds under an image, in order: quality 1–4, then faithfulness 1–4. */
export function votingReactions(scale: EmojiScale): string[] {
  return DIMENSIONS.flatMap((dimension) => [...scale[dimension]]);
}

export interface ReactionChange {
  /** "discord" | "slack". */
  platform: ReactionPlatform;
  /** The platform's reference to the message reacted on (as given to setMessageRef). */
  messageRef: string;
  /** The rater, prefixed by platform ("discord:123"). */
  rater: string;
  emoji: string;
  /** true when the reaction was added, false when removed. */
  added: boolean;
  /** When it happened, by the platform (ReactionEvent.at). */
  at?: Date;
  /** The platform's event id: a redelivery to any process changes the vote once (VoteStore). */
  eventId?: string;
}

export type ReactionOutcome =
  | { kind: "ignored"; reason: "not-a-vote" | "not-a-generation" }
  | {
      kind: "cast";
      generation: Generation;
      event: VoteEvent;
      /** The reaction of the score this vote replaced: the adapter removes it where it can. */
      replacedReaction?: string;
    }
  | { kind: "retracted"; generation: Generation; event: VoteEvent }
  /** A removed reaction whose score was no longer the current vote (the bot's cleanup). */
  | { kind: "unchanged"; generation: Generation };

/**
 * Applies one reaction change to the store. Changes by one rater on one message are applied one
 * at a time, in the order they arrive, so a quick "3 then 4" never ends as 3.
 */
export class ReactionVotes {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: VoteStore,
    private readonly scale: EmojiScale,
  ) {}

  apply(change: ReactionChange): Promise<ReactionOutcome> {
    const key = `${change.messageRef}\u0000${change.rater}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => this.applyNow(change));
    this.chains.set(key, next);
    void next
      .catch(() => {})
      .finally(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
      });
    return next;
  }

  private async applyNow(change: ReactionChange): Promise<ReactionOutcome> {
    const vote = reactionVote(change.emoji, this.scale, change.platform);
    if (!vote) return { kind: "ignored", reason: "not-a-vote" };
    const generation = await this.store.findGenerationByMessage(change.platform, change.messageRef);
    if (!generation) return { kind: "ignored", reason: "not-a-generation" };
    const ballot: Ballot = {
      generationId: generation.id,
      rater: change.rater,
      ...vote,
      ...(change.at !== undefined ? { at: change.at.toISOString() } : {}),
      ...(change.eventId !== undefined ? { eventId: change.eventId } : {}),
    };
    if (change.added) {
      const event = await this.store.castVote(ballot);
      const replacedReaction =
        event.kind === "replace" && event.previous !== undefined && event.previous !== event.score
          ? reactionFor(vote.dimension, event.previous, this.scale)
          : undefined;
      return replacedReaction === undefined
        ? { kind: "cast", generation, event }
        : { kind: "cast", generation, event, replacedReaction };
    }
    const event = await this.store.retractVote(ballot);
    return event ? { kind: "retracted", generation, event } : { kind: "unchanged", generation };
  }
}
