/**
 * The one chat flow, shared by every platform (the pattern of vercel/chat's processSlashCommand
 * and processReaction): platforms normalise events (platform.ts) and the flow does the rest.
 *
 *   command  → known? accepting? allowed channel? admin if admin-only? options valid?
 *              (any "no": a private refusal) → execute under the deadline watchdog, progress
 *              lines as the job moves → the result rendered by kind: images published (posted,
 *              remembered with setMessageRef, given the voting reactions), prompts, a report
 *              with its files; a requester's mistake refused privately, anything else a public
 *              failure with the job's own reference (logged in full under it)
 *   reaction → seen event? the bot's own? a message? a vote? a bot's? → vote cast, replaced
 *              (the old reaction removed where the platform allows) or retracted
 *   reconcile (the platform's start and every reconnect) → the reactions visible on the bot's
 *              recent image messages read back, and the stored votes brought to them
 *
 * A report of each ("command", "reaction", "reconcile") is emitted on `events` once it is fully
 * handled.
 */
import { EventEmitter, setMaxListeners } from "node:events";
import type { CommandResult, ImagesResult } from "../../commands/command.js";
import { unhandledResult } from "../../commands/command.js";
import { BotError, isBotError, isRequesterError } from "../../core/errors.js";
import {
  confirmDelivery,
  failureReference,
  type ImagineProgress,
  type ImagineResult,
} from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import {
  type ReconcileProgress,
  type ReconcileSummary,
  reconcileMessages,
} from "../../core/votes/index.js";
import { type AnyCommand, parseChatOptions } from "./commands.js";
import { RecentIds, type SeenEvents } from "./dedupe.js";
import {
  type ChatPlatform,
  type CommandEvent,
  type Conversation,
  type ImageMessage,
  type PostedMessage,
  type ReactionEvent,
  ReactionsForbidden,
} from "./platform.js";
import { ProgressLine } from "./progress.js";
import { failureReply, imageReplies, refusalNotes } from "./replies.js";
import { type ChatServices, commandContext, InFlight } from "./services.js";
import { type ReactionOutcome, ReactionVotes, votingReactions } from "./votes.js";

/** A command that has shown no progress and not settled by then begins its public reply. */
export const BEGIN_WITHIN_MS = 1_500;

/** How one command ended (emitted as "command" on ChatFlow.events). */
export interface CommandReport {
  /** The platform's id of the invocation. */
  id: string;
  command: string;
  /** The requester, bare platform id. */
  user: string;
  outcome: "done" | "refused" | "failed";
  /** The image messages posted, in order. */
  messages: PostedMessage[];
  /** The failure's reference (outcome "failed"). */
  reference?: string;
}

/** What happened to one reaction event (emitted as "reaction" on ChatFlow.events). */
export interface ReactionReport {
  eventId?: string;
  added: boolean;
  emoji: string | null;
  user: string;
  messageRef?: string;
  outcome:
    | ReactionOutcome
    | {
        kind: "ignored";
        reason: "duplicate" | "self" | "bot" | "custom-emoji" | "not-a-message" | "no-vote-store";
      }
    | { kind: "error"; error: unknown };
  /** For a replaced vote: whether the old reaction was removed (false: not allowed, logged). */
  oldReactionRemoved?: boolean;
}

export interface ChatFlowOptions {
  /** Event ids already handled (default: the last 5000 in memory). */
  seen?: SeenEvents;
}

/** Messages whose reactions are read at once while reconciling (platform calls and writes). */
export const RECONCILE_CONCURRENCY = 4;
/** A progress line at most this often while reconciling. */
const RECONCILE_PROGRESS_EVERY_MS = 5_000;
const DAY_MS = 24 * 60 * 60_000;

/** What a reconciliation did (emitted as "reconcile" on ChatFlow.events). */
export interface ReconcileReport {
  /** What asked for it: the platform's start, or a reconnect. */
  reason: string;
  summary: ReconcileSummary;
  ms: number;
}

export class ChatFlow {
  /** "command" (CommandReport), "reaction" (ReactionReport) and "reconcile" (ReconcileReport). */
  readonly events = new EventEmitter();
  private accepting = true;
  private readonly commandWork = new InFlight();
  private readonly reactionWork = new InFlight();
  /** The commands offered, in the order of the declarations. */
  readonly commands: readonly AnyCommand[];
  private readonly byName: Map<string, AnyCommand>;
  private readonly votes: ReactionVotes | undefined;
  private readonly seen: SeenEvents;
  private readonly logger: Logger;
  /** Stops a reconciliation in flight (shutdown). */
  private readonly reconcileAbort = new AbortController();
  /** The reconciliation running now, and whether another must follow it. */
  private reconciling: Promise<ReconcileReport | undefined> | undefined;
  private reconcileAgain: string | undefined;
  private latestReconciliation: Promise<ReconcileReport | undefined> | undefined;

  constructor(
    private readonly platform: ChatPlatform,
    private readonly services: ChatServices,
    options: ChatFlowOptions = {},
  ) {
    this.logger = services.logger.child({ adapter: platform.name });
    this.commands = services.commands;
    this.byName = new Map(services.commands.map((command) => [command.name, command]));
    this.votes = services.votes ? new ReactionVotes(services.votes, platform.emoji) : undefined;
    this.seen = options.seen ?? new RecentIds(5000);
  }

  /**
   * Refuse new commands from now on ("shutting down"); accepted work continues. A
   * reconciliation stops taking messages (the next start runs it again).
   */
  stopAccepting(): void {
    this.accepting = false;
    this.reconcileAbort.abort();
  }

  /** Resolves when every accepted command has replied and every reaction is recorded. */
  async drain(): Promise<void> {
    await Promise.all([this.commandWork.drain(), this.reactionWork.drain()]);
  }

  // ------------------------------------------------------------------ reconciliation

  /**
   * Brings the stored votes of the recent image messages (config.votes.reconcileDays, plus
   * every message of a running study) to the reactions visible on them: votes missed while the
   * bot was down or lost in a crash are added, stale ones replaced, gone ones retracted (see
   * core/votes/reconcile.ts). Called by the platform on start and after every reconnect; a call
   * while one runs makes one more run follow it (the reactions may have changed meanwhile).
   * Resolves with the last run's report (undefined without a vote store or after shutdown);
   * never rejects.
   */
  reconcile(reason: string): Promise<ReconcileReport | undefined> {
    if (this.reconciling) {
      this.reconcileAgain = reason;
      return this.reconciling;
    }
    const run = (async () => {
      let report: ReconcileReport | undefined;
      for (let next: string | undefined = reason; next !== undefined; ) {
        this.reconcileAgain = undefined;
        report = await this.reconcileOnce(next);
        next = this.reconcileAgain;
      }
      return report;
    })().finally(() => {
      this.reconciling = undefined;
    });
    this.reconciling = run;
    this.latestReconciliation = run;
    return this.reactionWork.track(run);
  }

  /** The latest reconciliation, in flight or finished; undefined before the first. */
  get reconciliation(): Promise<ReconcileReport | undefined> | undefined {
    return this.latestReconciliation;
  }

  private async reconcileOnce(reason: string): Promise<ReconcileReport | undefined> {
    const votes = this.services.votes;
    if (!votes || this.reconcileAbort.signal.aborted) return undefined;
    // One signal per run: the platform clients leave a listener on it per request.
    const run = new AbortController();
    setMaxListeners(0, run.signal);
    const stop = () => run.abort();
    this.reconcileAbort.signal.addEventListener("abort", stop, { once: true });
    const signal = run.signal;
    const log = this.logger.child({ reconcile: reason });
    const started = performance.now();
    try {
      const days = this.services.config.votes.reconcileDays;
      const studyIds = this.services.studies
        ? (await this.services.studies.list())
            .filter((study) => study.status === "running")
            .map((study) => study.id)
        : [];
      const since = new Date(Date.now() - days * DAY_MS);
      log.info({ days, studies: studyIds.length }, "reconciling votes with visible reactions");
      let lastLine = started;
      const progress = (p: ReconcileProgress) => {
        const now = performance.now();
        if (now - lastLine < RECONCILE_PROGRESS_EVERY_MS) return;
        lastLine = now;
        log.info(p, "reconciling");
      };
      const platform = this.platform;
      const summary = await reconcileMessages(votes, {
        platform: platform.name,
        scale: platform.emoji,
        messages: votes.postedMessages({
          platform: platform.name,
          ...(days > 0 ? { since } : {}),
          studyIds,
        }),
        reactionsOf: async (posted, abort) => {
          const message = platform.messageOfRef(posted.messageRef);
          // A reference this platform cannot have written: nothing to read, votes left alone.
          if (message === undefined) return undefined;
          const reactions = await platform.listReactions(message, abort);
          return reactions?.map((reaction) => ({
            emoji: reaction.emoji,
            raters: reaction.users.map((user) => `${platform.name}:${user}`),
          }));
        },
        concurrency: RECONCILE_CONCURRENCY,
        onProgress: progress,
        signal,
      });
      const ms = Math.round(performance.now() - started);
      for (const failure of summary.failed.slice(0, 5)) {
        log.warn({ err: failure.error, message: failure.messageRef }, "message not reconciled");
      }
      const { failed, ...counts } = summary;
      log.info({ ...counts, failed: failed.length, ms }, "votes reconciled");
      const report: ReconcileReport = { reason, summary, ms };
      this.events.emit("reconcile", report);
      return report;
    } catch (error) {
      log.error({ err: error }, "reconciliation failed");
      return undefined;
    } finally {
      this.reconcileAbort.signal.removeEventListener("abort", stop);
    }
  }

  // ------------------------------------------------------------------ commands

  /** Handles one command to its end; never rejects (a crash is logged and reported "failed"). */
  processCommand(event: CommandEvent): Promise<CommandReport> {
    const work = this.runCommand(event).catch((error: unknown) => {
      this.logger.error({ err: error, invocation: event.id }, "command handler failed");
      return report(event, "failed");
    });
    return this.commandWork.track(
      work.then((done) => {
        this.events.emit("command", done);
        return done;
      }),
    );
  }

  private async runCommand(event: CommandEvent): Promise<CommandReport> {
    const log = this.logger.child({
      invocation: event.id,
      command: event.command,
      user: event.user,
    });
    const { conversation } = event;
    const command = this.byName.get(event.command);
    const refusal = await this.refusal(event, command);
    if (refusal !== undefined || command === undefined) {
      await conversation.refuse(refusal ?? "That command is not available.");
      return report(event, "refused");
    }
    let input: unknown;
    try {
      input = parseChatOptions(command, event.options);
    } catch (error) {
      return this.failed(event, conversation, error, log);
    }

    const progress = new ProgressLine(conversation, log);
    const replyHandle = conversation.replyHandle?.();
    let progressed!: () => void;
    const firstProgress = new Promise<void>((resolve) => {
      progressed = resolve;
    });
    const context = commandContext(
      this.services,
      log,
      {
        platform: this.platform.name,
        user: `${this.platform.name}:${event.user}`,
        ...(event.server !== undefined ? { server: event.server } : {}),
        channel: event.channel,
        ...(replyHandle !== undefined ? { replyHandle } : {}),
      },
      (update: ImagineProgress) => {
        // "failed" comes just before the rejection: let the outcome decide how to answer.
        if (update.kind !== "failed" && update.kind !== "done") progressed();
        progress.show(update);
      },
    );

    // The deadline backstop: the queue fails jobs at config.queue.deadlineMs; this covers work
    // outside it (a report, a slow store) so that nobody is left waiting for ever.
    let watchdog: NodeJS.Timeout | undefined;
    const execution = Promise.race([
      command.execute(context, input) as Promise<CommandResult>,
      new Promise<never>((_resolve, reject) => {
        watchdog = setTimeout(
          () =>
            reject(
              new BotError("DEADLINE", "The command did not finish in time, so it was cancelled."),
            ),
          this.services.config.queue.deadlineMs + 1_000,
        );
      }),
    ]);
    let outcome: { value: CommandResult } | { error: unknown } | undefined;
    const settled = execution.then(
      (value) => {
        outcome = { value };
      },
      (error: unknown) => {
        outcome = { error };
      },
    );
    let beginTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      firstProgress,
      settled,
      new Promise<void>((resolve) => {
        beginTimer = setTimeout(resolve, BEGIN_WITHIN_MS);
      }),
    ]);
    clearTimeout(beginTimer);

    try {
      // A refusal before any work showed (explicit subject, queue full) stays private throughout.
      if (outcome && "error" in outcome && isRequesterError(outcome.error)) {
        await conversation.refuse(outcome.error.message);
        return report(event, "refused");
      }
      await conversation.begin();
      progress.start();
      await settled;
      await progress.finish();
      if (outcome === undefined) throw new Error("unreachable: execution settled without outcome");
      if ("error" in outcome) {
        // Several chat processes share the render queue: the outcome is published once, there.
        if (isBotError(outcome.error) && outcome.error.code === "DELIVERED_ELSEWHERE") {
          log.info({}, "outcome published by another chat process");
          return report(event, "done");
        }
        return await this.failed(event, conversation, outcome.error, log);
      }
      const result = outcome.value;
      switch (result.kind) {
        case "images":
          return await this.publishCommandImages(event, result, log);
        case "prompts":
          await conversation.prompts(result);
          return report(event, "done");
        case "report":
          // A private report (a rater's web link) goes to the asker only, like a refusal.
          if (result.private) await conversation.whisper(result.text);
          else await conversation.report(result);
          return report(event, "done");
        default:
          return unhandledResult(result);
      }
    } finally {
      clearTimeout(watchdog);
      // Posted (or given up): a restart of this process must not post the job again. A process
      // killed before this line leaves the job to its restart, which posts it instead.
      if (outcome !== undefined) {
        await confirmDelivery("value" in outcome ? outcome.value : outcome.error).catch(
          (error: unknown) => log.warn({ err: error }, "delivery not confirmed to the queue"),
        );
      }
    }
  }

  /** Why a command is refused before it runs, or undefined when it may run. */
  private async refusal(
    event: CommandEvent,
    command: AnyCommand | undefined,
  ): Promise<string | undefined> {
    if (command === undefined) return "That command is not available.";
    if (!this.accepting) return "The bot is shutting down; try again in a moment.";
    const channels = this.platform.channels;
    if (channels !== undefined && !channels.includes(event.channel)) {
      return "The bot doesn't work in this channel; ask an admin which channels it works in.";
    }
    if (command.adminOnly && !(await event.isAdmin())) {
      return `Only ${this.platform.admins} can use ${this.platform.commandLabel(command.name)}.`;
    }
    return undefined;
  }

  /** A requester's mistake privately; anything else publicly, with its logged reference. */
  private async failed(
    event: CommandEvent,
    conversation: Conversation,
    error: unknown,
    log: Logger,
  ): Promise<CommandReport> {
    const failure = failureReply(error, log, event.command);
    if (failure.kind === "refusal") {
      await conversation.refuse(failure.text);
      return report(event, "refused");
    }
    await conversation.fail(failure.text);
    return report(event, "failed", [], failure.reference);
  }

  private async publishCommandImages(
    event: CommandEvent,
    result: ImagesResult,
    log: Logger,
  ): Promise<CommandReport> {
    const posted: PostedMessage[] = [];
    const messages = this.imageMessages(result, event.user);
    for (const [index, message] of messages.entries()) {
      try {
        posted.push(
          await this.publish((m) => event.conversation.postImage(m, index), message, log),
        );
      } catch (error) {
        const failure = failureReply(error, log, event.command);
        await event.conversation.fail(
          `The image for "${message.image.subject}" was made but could not be posted here (reference ${failure.reference}).`,
        );
        return report(event, "failed", posted, failure.reference);
      }
    }
    return report(event, "done", posted);
  }

  /**
   * Posts an imagine result into a channel as new bot messages (batch-study items), each
   * remembered and given the voting reactions like /imagine's.
   */
  async publishResult(channel: string, result: ImagineResult): Promise<PostedMessage[]> {
    const log = this.logger.child({ channel });
    const posted: PostedMessage[] = [];
    for (const message of this.imageMessages(result, undefined)) {
      // Posted by a chat process that died before confirming the delivery: its restart posts
      // the rest only.
      if (await this.alreadyPosted(message, log)) continue;
      posted.push(await this.publish((m) => this.platform.postImage(channel, m), message, log));
    }
    return posted;
  }

  /**
   * Posts the failure of an imagine command another process took, after the platform's reply
   * window closed, as a new message in its channel: the public "Sorry, that failed … (reference
   * X)" the command's own reply would have shown (a refusal included: the request was public by
   * then). Undefined when this platform cannot post text to a channel.
   */
  async publishFailure(channel: string, error: unknown): Promise<PostedMessage | undefined> {
    if (this.platform.postText === undefined) return undefined;
    const failure = failureReply(error, this.logger.child({ channel }), "imagine");
    const text =
      failure.kind === "refusal"
        ? `Sorry, that failed: ${failure.text}${referenceNote(error)}`
        : failure.text;
    return this.platform.postText(channel, text);
  }

  /**
   * Answers an imagine command that another process took (a chat process restarted mid-job)
   * through its reply handle, as that process would have: the images replace the progress line,
   * with the voting reactions; a failure (or a refusal: the reply is public by now) replaces it
   * with the reason. Undefined when the platform no longer allows it (the caller then posts the
   * images in the channel instead).
   */
  async publishResumed(
    handle: string,
    outcome: { result: ImagineResult } | { error: unknown },
    requester: string,
  ): Promise<PostedMessage[] | undefined> {
    const conversation = this.platform.resumeConversation?.(handle);
    if (conversation === undefined) return undefined;
    const log = this.logger.child({ resumed: true });
    if ("error" in outcome) {
      await conversation.fail(failureReply(outcome.error, log, "imagine").text);
      return [];
    }
    const posted: PostedMessage[] = [];
    for (const [index, message] of this.imageMessages(outcome.result, requester).entries()) {
      // The first image edits the original reply again, harmlessly; a later one is a follow-up
      // message, which an earlier process that died before confirming may have posted.
      if (index > 0 && (await this.alreadyPosted(message, log))) continue;
      posted.push(await this.publish((m) => conversation.postImage(m, index), message, log));
    }
    return posted;
  }

  /** Whether an image's message is recorded already (posted by a process since killed). */
  private async alreadyPosted(message: ImageMessage, log: Logger): Promise<boolean> {
    const stored = await this.services.votes?.getGeneration(message.image.generationId);
    if (stored?.messageRef === undefined) return false;
    log.info({ generation: stored.id, ref: stored.messageRef }, "image already posted");
    return true;
  }

  private imageMessages(result: ImagineResult, requester: string | undefined): ImageMessage[] {
    const images = imageReplies(result);
    const notes = refusalNotes(result);
    return images.map((image, i) => ({
      image,
      votable: this.votes !== undefined,
      notes: i === images.length - 1 ? notes : [],
      ...(requester !== undefined ? { requester } : {}),
    }));
  }

  /**
   * Post → remember the message (setMessageRef) → add the voting reactions. Bounded by the job
   * deadline: a platform that keeps retrying never holds a reply for longer than a job may run.
   */
  private async publish(
    post: (message: ImageMessage) => Promise<PostedMessage>,
    message: ImageMessage,
    log: Logger,
  ): Promise<PostedMessage> {
    return withDeadline(
      (async () => {
        const posted = await post(message);
        if (this.services.votes) {
          await this.services.votes.setMessageRef(message.image.generationId, posted.ref);
          await this.addVotingReactions(posted, log);
        }
        log.info({ generation: message.image.generationId, ref: posted.ref }, "image posted");
        return posted;
      })(),
      this.services.config.queue.deadlineMs,
      "posting the image",
    );
  }

  private async addVotingReactions(message: PostedMessage, log: Logger): Promise<void> {
    for (const emoji of votingReactions(this.platform.emoji)) {
      try {
        await this.platform.addReaction(message, emoji);
      } catch (error) {
        // Votes still count when people add the reactions themselves.
        log.warn({ err: error, emoji, message: message.ref }, "could not add a voting reaction");
        if (error instanceof ReactionsForbidden) break;
      }
    }
  }

  // ------------------------------------------------------------------ reactions

  /** Handles one reaction to its end; never rejects (errors are logged and reported). */
  processReaction(event: ReactionEvent): Promise<ReactionReport> {
    return this.reactionWork.track(
      this.runReaction(event).then((done) => {
        this.events.emit("reaction", done);
        return done;
      }),
    );
  }

  private async runReaction(event: ReactionEvent): Promise<ReactionReport> {
    const base = {
      ...(event.eventId !== undefined ? { eventId: event.eventId } : {}),
      added: event.added,
      emoji: event.emoji,
      user: event.user,
      ...(event.message !== undefined ? { messageRef: event.message.ref } : {}),
    };
    const ignored = (
      reason: "duplicate" | "self" | "bot" | "custom-emoji" | "not-a-message" | "no-vote-store",
    ): ReactionReport => ({ ...base, outcome: { kind: "ignored", reason } });
    try {
      // Slack redelivers an event it did not see acknowledged in time: count it once.
      if (event.eventId !== undefined && !(await this.seen.firstTime(event.eventId))) {
        return ignored("duplicate");
      }
      if (event.user === this.platform.botUserId()) return ignored("self");
      const message = event.message;
      if (message === undefined) return ignored("not-a-message");
      if (!this.votes) return ignored("no-vote-store");
      if (event.custom || event.emoji === null) return ignored("custom-emoji");
      // A bot's reaction is never a vote.
      if (event.added && (await event.isBot?.())) return ignored("bot");
      const outcome = await this.votes.apply({
        platform: this.platform.name,
        messageRef: message.ref,
        rater: `${this.platform.name}:${event.user}`,
        emoji: event.emoji,
        added: event.added,
        ...(event.at !== undefined ? { at: event.at } : {}),
        ...(event.eventId !== undefined ? { eventId: event.eventId } : {}),
      });
      if (outcome.kind === "cast" && outcome.replacedReaction !== undefined) {
        const removed = await this.platform
          .removeReaction(message, outcome.replacedReaction, event.user)
          .catch((error: unknown) => {
            this.logger.warn({ err: error, message: message.ref }, "old reaction not removed");
            return false;
          });
        return { ...base, outcome, oldReactionRemoved: removed };
      }
      return { ...base, outcome };
    } catch (error) {
      this.logger.error({ err: error, ...base }, "reaction not recorded");
      return { ...base, outcome: { kind: "error", error } };
    }
  }
}

function referenceNote(error: unknown): string {
  const reference = failureReference(error);
  return reference === undefined ? "" : ` (reference ${reference})`;
}

function report(
  event: CommandEvent,
  outcome: CommandReport["outcome"],
  messages: PostedMessage[] = [],
  reference?: string,
): CommandReport {
  return {
    id: event.id,
    command: event.command,
    user: event.user,
    outcome,
    messages,
    ...(reference !== undefined ? { reference } : {}),
  };
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new BotError("DEADLINE", `${what} did not finish within ${ms} ms`)),
      ms,
    );
  });
  work.catch(() => {});
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
