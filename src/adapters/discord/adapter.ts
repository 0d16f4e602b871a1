/**
 * The Discord adapter: a discord.js client (intents Guilds and GuildMessageReactions only;
 * partial messages, reactions, users and channels so that votes on images posted before a
 * restart count) that translates slash commands into command calls and reactions into votes.
 *
 *   /imagine subject:…  → deferred reply → "Queued (position N)…" → "Writing the prompt…"
 *                        → "Rendering…" → the PNG with subject, prompt (not in a blind study),
 *                        seed and the voting legend → message recorded → 8 voting reactions
 *   reaction added       → vote cast; a replaced vote's old reaction is removed where allowed
 *   reaction removed     → vote retracted if that score is still the current one
 *   batch study item     → postResult(channel): the same image message, posted as an ordinary
 *                        bot message in the study's channel (see shared/studyPoster.ts)
 *
 * Every command in ChatServices.commands is dispatched from its declaration; nothing here is
 * specific to one command except how results with images are posted.
 */
import { EventEmitter, once } from "node:events";
import {
  AttachmentBuilder,
  type ChatInputCommandInteraction,
  Client,
  DiscordAPIError,
  Events,
  escapeMarkdown,
  GatewayIntentBits,
  type Interaction,
  type InteractionEditReplyOptions,
  type Message,
  MessageFlags,
  type MessageReaction,
  type PartialMessageReaction,
  Partials,
  type PartialUser,
  PermissionFlagsBits,
  Routes,
  type User,
} from "discord.js";
import { BotError, UserError } from "../../core/errors.js";
import type { ImagineProgress, ImagineResult } from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import { type AnyCommand, parseChatOptions } from "../shared/commands.js";
import {
  failureReply,
  type ImageReply,
  imageReplies,
  isImagineResult,
  isReportResult,
  progressText,
  type ReportReply,
  refusalNotes,
  resultText,
  votingLegend,
} from "../shared/replies.js";
import {
  type ChatServices,
  commandContext,
  InFlight,
  type RunningAdapter,
} from "../shared/services.js";
import { type ReactionOutcome, ReactionVotes, votingReactions } from "../shared/votes.js";
import type { DiscordSettings } from "./settings.js";

/** A command that has shown no progress and not settled by then is deferred ("thinking…"). */
export const DEFER_WITHIN_MS = 1_500;

/** Discord's cap on message content. */
const MAX_CONTENT = 2_000;

/** How an image message is referred to in the vote store: "<channel id>/<message id>". */
export function discordMessageRef(channelId: string, messageId: string): string {
  return `${channelId}/${messageId}`;
}

/** What happened to one reaction event (emitted as "reaction" on DiscordAdapter.events). */
export interface ReactionReport {
  added: boolean;
  emoji: string | null;
  userId: string;
  messageRef: string;
  outcome:
    | ReactionOutcome
    | { kind: "ignored"; reason: "self" | "bot" | "custom-emoji" | "no-vote-store" }
    | { kind: "error"; error: unknown };
  /** For a replaced vote: whether the old reaction was removed (false: no permission, logged). */
  oldReactionRemoved?: boolean;
}

/** How one command ended (emitted as "command" on DiscordAdapter.events). */
export interface CommandReport {
  interactionId: string;
  command: string;
  outcome: "done" | "refused" | "failed";
  /** The message ids posted with images, in order. */
  messages: string[];
}

export class DiscordAdapter implements RunningAdapter {
  readonly name = "discord";
  readonly client: Client;
  /** "reaction" (ReactionReport) and "command" (CommandReport), after each is fully handled. */
  readonly events = new EventEmitter();
  private accepting = true;
  private readonly inFlight = new InFlight();
  private readonly reactionWork = new InFlight();
  private readonly votes: ReactionVotes | undefined;
  private readonly commands: Map<string, AnyCommand>;
  private readonly logger: Logger;

  constructor(
    private readonly settings: DiscordSettings,
    private readonly services: ChatServices,
  ) {
    this.logger = services.logger.child({ adapter: "discord" });
    this.commands = new Map(services.commands.map((command) => [command.name, command]));
    this.votes = services.votes
      ? new ReactionVotes(services.votes, services.config.votes.discordEmoji)
      : undefined;
    this.client = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions],
      partials: [Partials.Message, Partials.Reaction, Partials.User, Partials.Channel],
      rest: { api: settings.apiUrl },
      allowedMentions: { parse: [] },
    });
    this.client.on(Events.InteractionCreate, (interaction) => this.onInteraction(interaction));
    this.client.on(Events.MessageReactionAdd, (reaction, user) => {
      void this.reactionWork.track(this.onReaction(reaction, user, true));
    });
    this.client.on(Events.MessageReactionRemove, (reaction, user) => {
      void this.reactionWork.track(this.onReaction(reaction, user, false));
    });
    this.client.on(Events.Error, (error) =>
      this.logger.error({ err: error }, "discord client error"),
    );
    this.client.on(Events.Warn, (message) =>
      this.logger.warn({ message }, "discord client warning"),
    );
  }

  /** Logs in and resolves once the client is ready (guilds received). */
  async start(): Promise<void> {
    const ready = once(this.client, Events.ClientReady);
    ready.catch(() => {});
    await this.client.login(this.settings.token);
    await ready;
    this.logger.info(
      { user: this.client.user?.id, guilds: this.client.guilds.cache.size },
      "discord ready",
    );
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  async drain(): Promise<void> {
    await this.inFlight.drain();
    await this.reactionWork.drain();
  }

  async close(): Promise<void> {
    this.accepting = false;
    await this.client.destroy();
  }

  private onInteraction(interaction: Interaction): void {
    if (!interaction.isChatInputCommand()) return;
    const work = this.onCommand(interaction).catch((error: unknown) => {
      this.logger.error({ err: error, interaction: interaction.id }, "interaction handler failed");
      return {
        interactionId: interaction.id,
        command: interaction.commandName,
        outcome: "failed",
        messages: [],
      } satisfies CommandReport;
    });
    void this.inFlight.track(work.then((report) => this.events.emit("command", report)));
  }

  private async onCommand(interaction: ChatInputCommandInteraction): Promise<CommandReport> {
    const log = this.logger.child({
      interaction: interaction.id,
      command: interaction.commandName,
      user: interaction.user.id,
    });
    const reply = new InteractionReply(interaction, log);
    const report = (outcome: CommandReport["outcome"], messages: string[] = []): CommandReport => ({
      interactionId: interaction.id,
      command: interaction.commandName,
      outcome,
      messages,
    });
    const command = this.commands.get(interaction.commandName);
    const refusal = this.refusal(interaction, command);
    if (refusal !== undefined || command === undefined) {
      await reply.refuse(refusal ?? "That command is not available.");
      return report("refused");
    }

    let input: unknown;
    try {
      input = parseChatOptions(
        command,
        Object.fromEntries(interaction.options.data.map((option) => [option.name, option.value])),
      );
    } catch (error) {
      const failure = failureReply(error, log, command.name);
      await reply.refuse(failure.text);
      return report("refused");
    }

    let progressed!: () => void;
    const firstProgress = new Promise<void>((resolve) => {
      progressed = resolve;
    });
    const context = commandContext(
      this.services,
      log,
      {
        platform: "discord",
        user: interaction.user.id,
        ...(interaction.guildId ? { server: interaction.guildId } : {}),
        channel: interaction.channelId,
      },
      (event: ImagineProgress) => {
        // "failed" comes just before the rejection: let the outcome decide how to answer.
        if (event.kind !== "failed" && event.kind !== "done") progressed();
        reply.progress(event);
      },
    );

    // The deadline backstop: the queue fails jobs at config.queue.deadlineMs; this covers work
    // outside it so that nobody is left with "thinking…".
    const deadlineMs = this.services.config.queue.deadlineMs;
    let watchdog: NodeJS.Timeout | undefined;
    const execution = Promise.race([
      command.execute(context, input),
      new Promise<never>((_resolve, reject) => {
        watchdog = setTimeout(
          () =>
            reject(
              new BotError("DEADLINE", "The command did not finish in time, so it was cancelled."),
            ),
          deadlineMs + 1_000,
        );
      }),
    ]);
    let outcome: { value: unknown } | { error: unknown } | undefined;
    const settled = execution.then(
      (value) => {
        outcome = { value };
      },
      (error: unknown) => {
        outcome = { error };
      },
    );
    let deferTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      firstProgress,
      settled,
      new Promise<void>((resolve) => {
        deferTimer = setTimeout(resolve, DEFER_WITHIN_MS);
      }),
    ]);
    clearTimeout(deferTimer);

    try {
      // A refusal before any work started (explicit subject, queue full) is shown to the asker only.
      if (outcome && "error" in outcome && outcome.error instanceof UserError) {
        await reply.refuse(outcome.error.message);
        return report("refused");
      }
      await reply.defer();
      await settled;
      if (outcome === undefined) throw new Error("unreachable: execution settled without outcome");
      if ("error" in outcome) {
        const failure = failureReply(outcome.error, log, command.name);
        if (failure.kind === "refusal") {
          await reply.refuse(failure.text);
          return report("refused");
        }
        await reply.finish({ content: failure.text, files: [] });
        return report("failed");
      }
      if (isImagineResult(outcome.value)) {
        const messages = await this.postImages(
          outcome.value,
          (payload, i) => (i === 0 ? reply.finish(payload) : reply.followUp(payload)),
          log,
        );
        return report("done", messages);
      }
      if (isReportResult(outcome.value)) {
        await reply.finish(reportPayload(outcome.value));
        return report("done");
      }
      await reply.finish({ content: truncate(resultText(command.name, outcome.value)) });
      return report("done");
    } finally {
      clearTimeout(watchdog);
    }
  }

  private refusal(
    interaction: ChatInputCommandInteraction,
    command: AnyCommand | undefined,
  ): string | undefined {
    if (command === undefined) return "That command is not available.";
    if (!this.accepting) return "The bot is shutting down; try again in a moment.";
    const channels = this.settings.channels;
    if (channels && !channels.includes(interaction.channelId)) {
      return "The bot doesn't work in this channel; ask a server admin which channels it works in.";
    }
    if (command.adminOnly && !interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) {
      return `Only people who can manage this server can use /${command.name}.`;
    }
    return undefined;
  }

  /**
   * Whether batch-study items for `channel` are posted here: a channel of a server the bot is in
   * (in the client's cache since ready) and, with DISCORD_CHANNELS, one of those.
   */
  ownsChannel(channel: string): boolean {
    if (this.settings.channels && !this.settings.channels.includes(channel)) return false;
    return this.client.channels.cache.has(channel);
  }

  /**
   * Posts an imagine result into a channel as ordinary bot messages (batch studies), each
   * recorded for votes and given the voting reactions, like /imagine's. Returns the message ids.
   */
  async postResult(channelId: string, result: ImagineResult): Promise<string[]> {
    const channel = await this.client.channels.fetch(channelId);
    if (!channel?.isSendable())
      throw new Error(`discord channel ${channelId} cannot take messages`);
    return this.postImages(
      result,
      (payload) => channel.send({ allowedMentions: { parse: [] }, ...payload }),
      this.logger.child({ channel: channelId }),
    );
  }

  /**
   * Posts each image with `send` (for /imagine: the first in place of "thinking…", then
   * follow-ups), records it and adds the reactions.
   */
  private async postImages(
    result: ImagineResult,
    send: (
      payload: { content: string; files: AttachmentBuilder[] },
      index: number,
    ) => Promise<Message>,
    log: Logger,
  ): Promise<string[]> {
    const scale = this.services.config.votes.discordEmoji;
    const legend = this.services.votes ? votingLegend(scale) : undefined;
    const images = imageReplies(result);
    const notes = refusalNotes(result);
    const posted: string[] = [];
    for (const [i, image] of images.entries()) {
      const content = caption(image, legend, i === images.length - 1 ? notes : []);
      const files = [
        new AttachmentBuilder(image.png, { name: image.fileName, description: image.altText }),
      ];
      const message = await send({ content, files }, i);
      posted.push(message.id);
      if (!this.services.votes) continue;
      const ref = discordMessageRef(message.channelId, message.id);
      await this.services.votes.setMessageRef(image.generationId, ref);
      for (const emoji of votingReactions(scale)) {
        try {
          await this.client.rest.put(
            Routes.channelMessageOwnReaction(
              message.channelId,
              message.id,
              encodeURIComponent(emoji),
            ),
          );
        } catch (error) {
          // Votes still count when people add the reactions themselves.
          log.warn({ err: error, emoji, message: message.id }, "could not add a voting reaction");
          if (isForbidden(error)) break;
        }
      }
    }
    return posted;
  }

  private async onReaction(
    reaction: MessageReaction | PartialMessageReaction,
    user: User | PartialUser,
    added: boolean,
  ): Promise<void> {
    const message = reaction.message;
    const ref = discordMessageRef(message.channelId, message.id);
    const base = { added, emoji: reaction.emoji.name, userId: user.id, messageRef: ref };
    const emit = (report: ReactionReport): void => {
      this.events.emit("reaction", report);
    };
    try {
      if (user.id === this.client.user?.id) {
        return emit({ ...base, outcome: { kind: "ignored", reason: "self" } });
      }
      if (!this.votes)
        return emit({ ...base, outcome: { kind: "ignored", reason: "no-vote-store" } });
      const emoji = reaction.emoji.id === null ? reaction.emoji.name : null;
      if (!emoji) return emit({ ...base, outcome: { kind: "ignored", reason: "custom-emoji" } });
      if (added) {
        // Reactions on old messages come with partial users; a bot's reaction is never a vote.
        const full = user.partial ? await user.fetch() : user;
        if (full.bot) return emit({ ...base, outcome: { kind: "ignored", reason: "bot" } });
      }
      // Partial messages (posted before a restart) carry their ids, which is all a vote needs.
      const outcome = await this.votes.apply({
        platform: "discord",
        messageRef: ref,
        rater: `discord:${user.id}`,
        emoji,
        added,
      });
      if (outcome.kind === "cast" && outcome.replacedReaction !== undefined) {
        const removed = await this.removeUserReaction(
          message.channelId,
          message.id,
          outcome.replacedReaction,
          user.id,
        );
        return emit({ ...base, outcome, oldReactionRemoved: removed });
      }
      emit({ ...base, outcome });
    } catch (error) {
      this.logger.error({ err: error, ...base }, "reaction not recorded");
      emit({ ...base, outcome: { kind: "error", error } });
    }
  }

  private async removeUserReaction(
    channelId: string,
    messageId: string,
    emoji: string,
    userId: string,
  ): Promise<boolean> {
    try {
      await this.client.rest.delete(
        Routes.channelMessageUserReaction(channelId, messageId, encodeURIComponent(emoji), userId),
      );
      return true;
    } catch (error) {
      // Needs Manage Messages; without it the old reaction stays but no longer counts.
      this.logger.warn(
        { err: error, channel: channelId, message: messageId, forbidden: isForbidden(error) },
        "could not remove a replaced vote's reaction",
      );
      return false;
    }
  }
}

/** Starts the adapter (logs in); the caller closes it. */
export async function startDiscordAdapter(
  settings: DiscordSettings,
  services: ChatServices,
): Promise<DiscordAdapter> {
  const adapter = new DiscordAdapter(settings, services);
  try {
    await adapter.start();
  } catch (error) {
    await adapter.client.destroy().catch(() => {});
    throw error;
  }
  return adapter;
}

function isForbidden(error: unknown): boolean {
  return error instanceof DiscordAPIError && error.status === 403;
}

function truncate(text: string): string {
  return text.length <= MAX_CONTENT ? text : `${text.slice(0, MAX_CONTENT - 1)}…`;
}

const FENCE = "`".repeat(3);

/** A report as a code block, or as report.txt when too long; its files attached. */
function reportPayload(report: ReportReply): InteractionEditReplyOptions {
  const files = report.files.map(
    (file) => new AttachmentBuilder(file.content, { name: file.name }),
  );
  const block = `${FENCE}\n${report.text.split(FENCE).join("'".repeat(3)).trimEnd()}\n${FENCE}`;
  if (block.length <= MAX_CONTENT) return { content: block, files };
  files.unshift(new AttachmentBuilder(Buffer.from(report.text, "utf8"), { name: "report.txt" }));
  return { content: "The report is attached.", files };
}

/** The text under an image; no arm, and no prompt while a blind study runs. */
export function caption(image: ImageReply, legend: string | undefined, notes: string[]): string {
  const lines = [`**${escapeMarkdown(image.subject)}**`];
  if (image.prompt !== undefined) lines.push(`Prompt: ${escapeMarkdown(image.prompt)}`);
  lines.push(`Seed: ${image.seed}`);
  if (legend) lines.push(legend);
  lines.push(...notes);
  return truncate(lines.join("\n"));
}

/**
 * One interaction's reply: the deferral, progress edits in order (consecutive queue positions
 * collapse into the latest), then the final edit, follow-ups, or an ephemeral refusal.
 */
class InteractionReply {
  private readonly pending: { kind: ImagineProgress["kind"]; text: string }[] = [];
  private pumping: Promise<void> | undefined;
  private shown: string | undefined;
  private deferred = false;
  private finished = false;

  constructor(
    private readonly interaction: ChatInputCommandInteraction,
    private readonly log: Logger,
  ) {}

  progress(event: ImagineProgress): void {
    if (this.finished) return;
    const text = progressText(event);
    if (text === undefined) return;
    const last = this.pending.at(-1);
    if (last?.kind === "queued" && event.kind === "queued") last.text = text;
    else this.pending.push({ kind: event.kind, text });
    this.pump();
  }

  async defer(): Promise<void> {
    if (this.deferred) return;
    await this.interaction.deferReply();
    this.deferred = true;
    this.pump();
  }

  /** Replaces "thinking…" or the progress line with the final reply. */
  async finish(options: InteractionEditReplyOptions): Promise<Message> {
    await this.settleProgress();
    this.finished = true;
    return this.interaction.editReply({ allowedMentions: { parse: [] }, ...options });
  }

  async followUp(options: { content: string; files: AttachmentBuilder[] }): Promise<Message> {
    return this.interaction.followUp({ allowedMentions: { parse: [] }, ...options });
  }

  /** Shows a refusal to the asker only: a reply, or in place of a deferred public one. */
  async refuse(text: string): Promise<void> {
    const payload = {
      content: truncate(text),
      flags: MessageFlags.Ephemeral as const,
      allowedMentions: { parse: [] },
    };
    if (!this.deferred) {
      this.finished = true;
      await this.interaction.reply(payload);
      return;
    }
    await this.settleProgress();
    this.finished = true;
    await this.interaction.deleteReply().catch((error: unknown) => {
      this.log.warn({ err: error }, "could not delete the deferred reply");
    });
    await this.interaction.followUp(payload);
  }

  /** Waits for the progress edits already due, so the final edit comes last. */
  private async settleProgress(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  private pump(): void {
    if (!this.deferred || this.pumping || this.finished) return;
    const run = async () => {
      for (let next = this.pending.shift(); next; next = this.pending.shift()) {
        if (this.finished) break;
        if (next.text === this.shown) continue;
        try {
          await this.interaction.editReply({ content: next.text });
          this.shown = next.text;
        } catch (error) {
          this.log.warn({ err: error }, "progress edit failed");
        }
      }
    };
    // .finally runs after the assignment below, even when run() had nothing to await.
    const pumping: Promise<void> = run().finally(() => {
      if (this.pumping === pumping) this.pumping = undefined;
      if (this.pending.length > 0) this.pump();
    });
    this.pumping = pumping;
  }
}
