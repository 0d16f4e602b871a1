/**
 * Reconciliation: bring the stored votes of a posted image to what its reactions show. Reactions
 * added or removed while the bot was down, or whose events were lost in a crash, never reached
 * the store; after a restart or a gateway reconnect the adapter reads the reactions on its recent
 * image messages and hands them here. Platform-neutral: the adapter fetches (paginated, rate
 * limited), this decides and writes.
 *
 * For each (rater, dimension) of the message, given the scores whose reactions the rater has on
 * it and the stored vote:
 *   - no visible reaction, a stored vote      → the vote is retracted
 *   - the stored score is among the visible   → nothing changes (so a rater whose old reaction
 *                                               the bot could not remove keeps the vote live
 *                                               reactions gave them)
 *   - otherwise                               → the vote becomes the HIGHEST visible score (an
 *                                               add, or a replace of a stale vote)
 * Reaction lists carry no times, so "latest wins" cannot be known for a rater with two visible
 * reactions in one dimension and no matching stored vote; the highest score is a fixed rule, so
 * that the result never depends on the order reactions are listed in and a second run finds
 * nothing to do. Never are two votes counted: one rater has one vote per dimension.
 *
 * Every change is an ordinary vote event with `source: "reconcile"`. Reconciling twice changes
 * nothing the second time. A live reaction applied between the adapter's reading of the
 * reactions and these writes can be overwritten by the older view; it is visible on the message,
 * so the next reconciliation restores it.
 */
import { UserError } from "../errors.js";
import type { Ballot, Dimension, VoteEvent, VoteStore } from "../types.js";
import { type EmojiTable, type ReactionPlatform, scoreOfReaction } from "./emoji.js";

/** VoteEvent.source of the changes reconciliation makes. */
export const RECONCILE_SOURCE = "reconcile";

/** One reaction on a message and everyone (but the bot) who has it. */
export interface VisibleReaction {
  /** As the platform reports it (Discord "1️⃣" or "name:id", Slack "one"). */
  emoji: string;
  /** Raters in the store's form, "<platform>:<user id>"; the bot itself left out by the caller. */
  raters: readonly string[];
}

export interface ReconcileMessageInput {
  platform: ReactionPlatform;
  /** As given to setMessageRef. */
  messageRef: string;
  reactions: readonly VisibleReaction[];
  /** The platform's reactions per score (config.votes.discordEmoji / slackEmoji). */
  scale: EmojiTable;
}

export interface ReconcileOutcome {
  messageRef: string;
  /** "not-a-generation": no generation was posted as this message; nothing was written. */
  status: "reconciled" | "not-a-generation";
  generationId?: string;
  /** The changes made, in order (empty when the store already matched). */
  events: VoteEvent[];
}

type Target = { rater: string; dimension: Dimension };

/** Brings one message's stored votes to its visible reactions (see the module comment). */
export async function reconcileMessage(
  store: VoteStore,
  input: ReconcileMessageInput,
): Promise<ReconcileOutcome> {
  checkInput(input);
  const { platform, messageRef } = input;
  const generation = await store.findGenerationByMessage(platform, messageRef);
  if (generation === undefined) return { messageRef, status: "not-a-generation", events: [] };

  // (rater, dimension) → the scores the rater has visible reactions for.
  const visible = new Map<string, { target: Target; scores: Set<number> }>();
  for (const reaction of input.reactions) {
    const vote = scoreOfReaction(platform, reaction.emoji, input.scale);
    if (vote === undefined) continue;
    for (const rater of reaction.raters) {
      const key = slot(rater, vote.dimension);
      let entry = visible.get(key);
      if (entry === undefined) {
        entry = { target: { rater, dimension: vote.dimension }, scores: new Set() };
        visible.set(key, entry);
      }
      entry.scores.add(vote.score);
    }
  }
  const stored = new Map(
    (await store.votesOf(generation.id)).map((vote) => [slot(vote.rater, vote.dimension), vote]),
  );

  const events: VoteEvent[] = [];
  const ballot = (target: Target, score: number): Ballot => ({
    generationId: generation.id,
    rater: target.rater,
    dimension: target.dimension,
    score,
    source: RECONCILE_SOURCE,
  });
  // Sorted, so that the events come in the same order whatever order the reactions came in.
  for (const key of [...new Set([...visible.keys(), ...stored.keys()])].sort()) {
    const current = stored.get(key);
    const seen = visible.get(key);
    if (seen === undefined) {
      if (current === undefined) continue;
      const event = await store.retractVote(ballot(current, current.score));
      if (event) events.push(event);
      continue;
    }
    if (current !== undefined && seen.scores.has(current.score)) continue;
    events.push(await store.castVote(ballot(seen.target, Math.max(...seen.scores))));
  }
  return { messageRef, status: "reconciled", generationId: generation.id, events };
}

/** Raters and dimensions cannot contain "\u0000", so the pair is unambiguous. */
function slot(rater: string, dimension: Dimension): string {
  return `${rater}\u0000${dimension}`;
}

function checkInput(input: ReconcileMessageInput): void {
  if (input.platform !== "discord" && input.platform !== "slack") {
    throw new UserError(
      "USAGE",
      `reconcile: platform "${String(input.platform)}" is not discord or slack`,
    );
  }
  if (typeof input.messageRef !== "string" || input.messageRef === "") {
    throw new UserError("USAGE", "reconcile: a message needs its messageRef");
  }
  if (!Array.isArray(input.reactions)) {
    throw new UserError("USAGE", `reconcile: reactions of ${input.messageRef} must be a list`);
  }
  for (const reaction of input.reactions) {
    if (typeof reaction?.emoji !== "string" || !Array.isArray(reaction.raters)) {
      throw new UserError(
        "USAGE",
        `reconcile: each reaction of ${input.messageRef} needs an emoji and a list of raters`,
      );
    }
    const bad = (reaction.raters as readonly unknown[]).find(
      (rater) => typeof rater !== "string" || rater === "",
    );
    if (bad !== undefined) {
      throw new UserError(
        "USAGE",
        `reconcile: a rater of ${reaction.emoji} on ${input.messageRef} is not a non-empty string`,
      );
    }
  }
}

// ── Many messages ───────────────────────────────────────────────────────────────────────────

export interface ReconcileProgress {
  /** Messages finished (reconciled, not a generation, gone or failed). */
  done: number;
  /** Messages to do, when known (an array was given). */
  total?: number;
  /** Vote events written so far. */
  changes: number;
  failed: number;
}

export interface ReconcileMessagesOptions<M extends { messageRef: string }> {
  platform: ReactionPlatform;
  scale: EmojiTable;
  /** The messages to reconcile, for example VoteStore.postedMessages(...). */
  messages: Iterable<M> | AsyncIterable<M>;
  /**
   * Reads a message's visible reactions from the platform (every page; raters as
   * "<platform>:<id>"; the bot's own reactions left out). Resolves undefined when the message is
   * gone (deleted): its stored votes are then left as they are, since nobody can see or change
   * its reactions any more. A rejection marks only that message as failed.
   */
  reactionsOf(message: M, signal: AbortSignal): Promise<readonly VisibleReaction[] | undefined>;
  /** Messages in flight at once (default 4): bounds the platform calls as much as the writes. */
  concurrency?: number;
  onProgress?(progress: ReconcileProgress): void;
  /** Stops taking new messages; the ones in flight finish. */
  signal?: AbortSignal;
}

export interface ReconcileSummary {
  /** Messages looked at. */
  messages: number;
  reconciled: number;
  /** Messages the store has no generation for. */
  notGenerations: number;
  /** Messages the platform no longer has. */
  gone: number;
  failed: { messageRef: string; error: unknown }[];
  added: number;
  replaced: number;
  retracted: number;
  /** Whether the signal stopped it before the end. */
  aborted: boolean;
}

const MAX_CONCURRENCY = 64;

/**
 * Reconciles many messages with at most `concurrency` in flight, reporting progress after each.
 * One message failing (its reactions could not be read, a write failed) does not stop the rest;
 * it is listed in `failed`. A failing `messages` listing (the store) rejects, once the messages
 * in flight have finished.
 */
export async function reconcileMessages<M extends { messageRef: string }>(
  store: VoteStore,
  options: ReconcileMessagesOptions<M>,
): Promise<ReconcileSummary> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
    throw new UserError(
      "USAGE",
      `reconcile: concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, got ${concurrency}`,
    );
  }
  const signal = options.signal ?? new AbortController().signal;
  const total = Array.isArray(options.messages) ? options.messages.length : undefined;
  const iterator =
    Symbol.asyncIterator in options.messages
      ? (options.messages as AsyncIterable<M>)[Symbol.asyncIterator]()
      : (options.messages as Iterable<M>)[Symbol.iterator]();
  const summary: ReconcileSummary = {
    messages: 0,
    reconciled: 0,
    notGenerations: 0,
    gone: 0,
    failed: [],
    added: 0,
    replaced: 0,
    retracted: 0,
    aborted: false,
  };
  let changes = 0;
  const report = () => {
    options.onProgress?.({
      done: summary.messages,
      ...(total === undefined ? {} : { total }),
      changes,
      failed: summary.failed.length,
    });
  };

  // Workers share one iterator; an async generator queues concurrent next() calls itself.
  let exhausted = false;
  let listingFailed = false;
  const next = async (): Promise<M | undefined> => {
    if (exhausted || listingFailed || signal.aborted) return undefined;
    let step: IteratorResult<M>;
    try {
      step = await iterator.next();
    } catch (error) {
      listingFailed = true;
      throw error;
    }
    if (step.done) {
      exhausted = true;
      return undefined;
    }
    return step.value;
  };
  const worker = async () => {
    for (let message = await next(); message !== undefined; message = await next()) {
      try {
        const reactions = await options.reactionsOf(message, signal);
        if (reactions === undefined) {
          summary.gone += 1;
        } else {
          const outcome = await reconcileMessage(store, {
            platform: options.platform,
            messageRef: message.messageRef,
            reactions,
            scale: options.scale,
          });
          if (outcome.status === "not-a-generation") summary.notGenerations += 1;
          else summary.reconciled += 1;
          for (const event of outcome.events) {
            if (event.kind === "add") summary.added += 1;
            else if (event.kind === "replace") summary.replaced += 1;
            else summary.retracted += 1;
          }
          changes += outcome.events.length;
        }
      } catch (error) {
        summary.failed.push({ messageRef: message.messageRef, error });
      }
      summary.messages += 1;
      report();
    }
  };
  // Every worker ends before this returns or throws (a failing listing stops them all).
  const results = await Promise.allSettled(Array.from({ length: concurrency }, worker));
  if (!exhausted && !listingFailed) await iterator.return?.();
  const broken = results.find((result) => result.status === "rejected");
  if (broken) throw broken.reason;
  summary.aborted = signal.aborted && !exhausted;
  return summary;
}
