/**
 * The contract between the one chat flow (flow.ts) and a chat platform (Discord, Slack).
 *
 * A platform adapter does two things only: it normalises what the platform delivers into
 * CommandEvent and ReactionEvent and hands them to ChatFlow.processCommand / processReaction,
 * and it implements the small surface below (ChatPlatform for what is not tied to one command,
 * Conversation for one command's replies). Everything else — dispatch from the declarations,
 * shutdown, channel allow-list and admin checks, the deadline watchdog, progress, refusal
 * versus failure, publishing an image with its voting reactions, reaction → vote with dedupe —
 * is the flow's, and is therefore the same on every platform.
 *
 * @example A platform's slash command handler
 * ```ts
 * void flow.processCommand({
 *   id: interaction.id, command: interaction.commandName, options, user: interaction.user.id,
 *   channel: interaction.channelId, isAdmin: async () => canManageServer(interaction),
 *   conversation: new InteractionConversation(interaction),
 * });
 * ```
 */
import type { PromptsResult, ReportResult } from "../../commands/command.js";
import type { ImageReply } from "./replies.js";
import type { EmojiScale } from "./votes.js";

export type PlatformName = "discord" | "slack";

/** A message the bot posted, by the platform's ids and by the vote store's reference. */
export interface PostedMessage {
  channel: string;
  /** The platform's message id: a Discord snowflake, a Slack ts. */
  id: string;
  /** The vote store's reference (setMessageRef): Discord "<channel>/<id>", Slack "<channel>:<ts>". */
  ref: string;
}

/** One image as a message: the image, whether it is rated by reactions, notes under it. */
export interface ImageMessage {
  image: ImageReply;
  /** Show the voting legend: the bot records votes here. */
  votable: boolean;
  /** Lines for the requester under the image (images that were not made, and why). */
  notes: string[];
  /** The platform user id of who asked; undefined for a batch study's item. */
  requester?: string;
}

/** One reaction on a message and the people who have it (bare platform ids). */
export interface ReactionUsers {
  /** As the platform writes it (Discord "1️⃣", Slack "one"). */
  emoji: string;
  users: string[];
}

/**
 * What the flow needs from a platform outside one command: batch-study posts and reactions.
 *
 * Reconciliation (stored votes = visible reactions after downtime): the platform lists a
 * message's reactions (listReactions) and calls ChatFlow.reconcile when it starts and after
 * every reconnect (Discord gateway READY/RESUMED, Slack Socket Mode reconnect).
 */
export interface ChatPlatform {
  readonly name: PlatformName;
  /** The voting reactions as this platform writes them (config.votes.discordEmoji / slackEmoji). */
  readonly emoji: EmojiScale;
  /** Commands are refused outside these channels; undefined allows every channel. */
  readonly channels: readonly string[] | undefined;
  /** Who may run admin commands, as the refusal says it ("people who can manage this server"). */
  readonly admins: string;
  /** The bot's own user id (its reactions are never votes); undefined before login. */
  botUserId(): string | undefined;
  /** How a person types a command here: "/stats" on Discord, "/imagine stats" on Slack. */
  commandLabel(command: string): string;
  /** Posts an image as a new bot message in a channel (batch-study items). */
  postImage(channel: string, message: ImageMessage): Promise<PostedMessage>;
  /**
   * Posts a line of text as a new bot message in a channel (a recovered job's failure after its
   * reply window), mentions disabled.
   */
  postText?(channel: string, text: string): Promise<PostedMessage>;
  /**
   * Adds the bot's own reaction. Throws ReactionsForbidden when the bot may not react on that
   * message at all (the flow stops adding the rest); other errors are logged and skipped.
   */
  addReaction(message: PostedMessage, emoji: string): Promise<void>;
  /**
   * Removes a person's reaction (the old score of a replaced vote). False when the platform does
   * not let a bot do that (Slack) or the bot lacks the permission; the vote counts either way.
   */
  removeReaction(message: PostedMessage, emoji: string, user: string): Promise<boolean>;
  /**
   * The people's voting reactions on one of the bot's messages, every page, without the bot's
   * own; undefined when the message is gone. Waits out the platform's rate limits.
   */
  listReactions(message: PostedMessage, signal: AbortSignal): Promise<ReactionUsers[] | undefined>;
  /** The message a vote-store reference names (the inverse of PostedMessage.ref). */
  messageOfRef(ref: string): PostedMessage | undefined;
  /**
   * The conversation a Conversation.replyHandle names, made in another process; undefined once
   * the platform no longer lets the bot answer it (Discord: 15 minutes after the command).
   */
  resumeConversation?(handle: string): Conversation | undefined;
}

/** Thrown by addReaction when reacting on that message is not allowed at all. */
export class ReactionsForbidden extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ReactionsForbidden";
  }
}

/**
 * One command's replies on its platform. The flow calls these one at a time, in this order:
 * optionally begin, then status lines, then exactly one of refuse / fail / the result.
 *
 * A refusal is private (only the requester sees it, with the reason); a failure is public, in
 * place of the progress line, with the job's own reference. Results other than images have one
 * renderer per kind (ResultRenderers), so a new kind of CommandResult is a compile error in
 * every platform until it renders it.
 */
export interface Conversation extends ResultRenderers {
  /**
   * The work takes a moment: Discord defers ("thinking…"); Slack has acknowledged already. Not
   * called for a refusal that comes before any work, so that it can stay private from the start.
   */
  begin(): Promise<void>;
  /** Shows or replaces the public progress line ("Queued (position 2)…"). */
  status(text: string): Promise<void>;
  /** Tells only the requester; takes back a public progress line. */
  refuse(text: string): Promise<void>;
  /** Tells only the requester something that is not a refusal (a private link), the same way. */
  whisper(text: string): Promise<void>;
  /** Says publicly that the command failed, in place of the progress line. */
  fail(text: string): Promise<void>;
  /** Posts image `index` (counting from 0; the first replaces the progress line). */
  postImage(message: ImageMessage, index: number): Promise<PostedMessage>;
  /**
   * An opaque handle with which another process can go on answering this command through
   * ChatPlatform.resumeConversation (a chat process restarted mid-job); undefined where the
   * platform has no such thing.
   */
  replyHandle?(): string | undefined;
}

/** A renderer for every result kind the flow does not publish itself (images). */
export type ResultRenderers = {
  prompts(result: PromptsResult): Promise<void>;
  report(result: ReportResult): Promise<void>;
};

/** A slash command as a platform delivered it. */
export interface CommandEvent {
  /** The platform's id of this invocation (Discord interaction id, Slack trigger_id). */
  id: string;
  /** The declaration's name ("imagine", "stats"). */
  command: string;
  /** Option values by their chat name (snake_case), as typed; the flow validates them. */
  options: Readonly<Record<string, unknown>>;
  /** The platform's user id, bare ("123", "U0ALICE"); the flow qualifies it. */
  user: string;
  server?: string;
  channel: string;
  /** Whether the person may run admin commands (Discord: Manage Server; Slack: workspace admin). */
  isAdmin(): Promise<boolean>;
  conversation: Conversation;
}

/** A reaction added or removed, as a platform delivered it. */
export interface ReactionEvent {
  /** The platform's event id, when it redelivers events (Slack): seen ids are dropped. */
  eventId?: string;
  /**
   * When the platform says the reaction happened (Slack's event_ts); without it the store's
   * clock. A vote's changes resolve to the latest by this time in every process (core votes).
   */
  at?: Date;
  added: boolean;
  /** The platform user id, bare. */
  user: string;
  /** The emoji as the platform's scale writes it (a custom emoji: its name). */
  emoji: string | null;
  /** A custom (server) emoji, which is never a vote. */
  custom?: boolean;
  /** The message reacted on; undefined when it is not a message (a Slack file). */
  message: PostedMessage | undefined;
  /** Whether the person is a bot (checked only for added reactions; may fetch the user). */
  isBot?(): Promise<boolean>;
}
