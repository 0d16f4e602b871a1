/**
 * The Discord adapter: a discord.js client (intents Guilds and GuildMessageReactions only;
 * partial messages, reactions, users and channels so that votes on images posted before a
 * restart count) whose events become the chat flow's CommandEvent and ReactionEvent. What
 * happens then is the flow's (src/adapters/chat/flow.ts); the replies are messages.ts, the
 * reactions reactions.ts.
 */
import { once } from "node:events";
import {
  type ChatInputCommandInteraction,
  Client,
  Events,
  GatewayIntentBits,
  type Interaction,
  type MessageReaction,
  type PartialMessageReaction,
  Partials,
  type PartialUser,
  PermissionFlagsBits,
  type User,
} from "discord.js";
import type { ImagineResult } from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import { ChatFlow } from "../chat/flow.js";
import type {
  ChatPlatform,
  Conversation,
  ImageMessage,
  PostedMessage,
  ReactionUsers,
} from "../chat/platform.js";
import type { ChatServices, RunningAdapter } from "../chat/services.js";
import { type EmojiScale, votingReactions } from "../chat/votes.js";
import { InteractionConversation, imagePayload, truncate } from "./messages.js";
import {
  addDiscordReaction,
  discordMessage,
  listDiscordReactions,
  removeDiscordReaction,
} from "./reactions.js";
import { resumeInteraction } from "./resume.js";
import type { DiscordSettings } from "./settings.js";

export class DiscordAdapter implements RunningAdapter, ChatPlatform {
  readonly name = "discord";
  readonly client: Client;
  readonly flow: ChatFlow;
  readonly emoji: EmojiScale;
  readonly channels: readonly string[] | undefined;
  readonly admins = "people who can manage this server";
  private readonly logger: Logger;

  constructor(
    private readonly settings: DiscordSettings,
    services: ChatServices,
  ) {
    this.logger = services.logger.child({ adapter: "discord" });
    this.emoji = services.config.votes.discordEmoji;
    this.channels = settings.channels;
    this.flow = new ChatFlow(this, services);
    this.client = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions],
      partials: [Partials.Message, Partials.Reaction, Partials.User, Partials.Channel],
      rest: { api: settings.apiUrl },
      // Each shard's gateway connection gets only its guilds' interactions and reactions, which
      // this process handles; votes go to the shared store (see README, Scaling).
      ...(settings.shards === "auto"
        ? { shards: "auto" as const }
        : settings.shards !== undefined
          ? { shards: [...settings.shards.ids], shardCount: settings.shards.count }
          : {}),
      allowedMentions: { parse: [] },
    });
    this.client.on(Events.InteractionCreate, (interaction) => this.onInteraction(interaction));
    this.client.on(Events.MessageReactionAdd, (reaction, user) => {
      void this.flow.processReaction(reactionEvent(reaction, user, true));
    });
    this.client.on(Events.MessageReactionRemove, (reaction, user) => {
      void this.flow.processReaction(reactionEvent(reaction, user, false));
    });
    // Reactions changed while the gateway was away are not all replayed (never across a new
    // session): read them back on every READY (the first login included) and RESUMED.
    this.client.on(Events.ShardReady, (shard) => {
      void this.flow.reconcile(`shard ${shard} ready`);
    });
    this.client.on(Events.ShardResume, (shard) => {
      void this.flow.reconcile(`shard ${shard} resumed`);
    });
    this.client.on(Events.Error, (error) =>
      this.logger.error({ err: error }, "discord client error"),
    );
    this.client.on(Events.Warn, (message) =>
      this.logger.warn({ message }, "discord client warning"),
    );
  }

  /** "command" and "reaction" reports (see ChatFlow.events). */
  get events() {
    return this.flow.events;
  }

  /** Logs in and resolves once the client is ready (guilds received). */
  async start(): Promise<void> {
    const ready = once(this.client, Events.ClientReady);
    ready.catch(() => {});
    await this.client.login(this.settings.token);
    await ready;
    this.logger.info(
      {
        user: this.client.user?.id,
        guilds: this.client.guilds.cache.size,
        shards: this.client.options.shards,
        shardCount: this.client.options.shardCount,
      },
      "discord ready",
    );
  }

  stopAccepting(): void {
    this.flow.stopAccepting();
  }

  drain(): Promise<void> {
    return this.flow.drain();
  }

  async close(): Promise<void> {
    this.flow.stopAccepting();
    await this.client.destroy();
  }

  // ------------------------------------------------------------------ ChatPlatform

  botUserId(): string | undefined {
    return this.client.user?.id;
  }

  commandLabel(command: string): string {
    return `/${command}`;
  }

  async postImage(channelId: string, message: ImageMessage): Promise<PostedMessage> {
    const channel = await this.client.channels.fetch(channelId);
    if (!channel?.isSendable())
      throw new Error(`discord channel ${channelId} cannot take messages`);
    const posted = await channel.send({
      allowedMentions: { parse: [] },
      ...imagePayload(message, this.emoji),
    });
    return discordMessage(posted.channelId, posted.id);
  }

  async postText(channelId: string, text: string): Promise<PostedMessage> {
    const channel = await this.client.channels.fetch(channelId);
    if (!channel?.isSendable())
      throw new Error(`discord channel ${channelId} cannot take messages`);
    const posted = await channel.send({ content: truncate(text), allowedMentions: { parse: [] } });
    return discordMessage(posted.channelId, posted.id);
  }

  addReaction(message: PostedMessage, emoji: string): Promise<void> {
    return addDiscordReaction(this.client.rest, message, emoji);
  }

  async removeReaction(message: PostedMessage, emoji: string, user: string): Promise<boolean> {
    const removed = await removeDiscordReaction(this.client.rest, message, emoji, user);
    // Needs Manage Messages; without it the old reaction stays but no longer counts.
    if (!removed) {
      this.logger.warn({ message: message.ref }, "could not remove a replaced vote's reaction");
    }
    return removed;
  }

  listReactions(message: PostedMessage, signal: AbortSignal): Promise<ReactionUsers[] | undefined> {
    return listDiscordReactions(
      this.client.rest,
      message,
      votingReactions(this.emoji),
      this.botUserId(),
      signal,
    );
  }

  messageOfRef(ref: string): PostedMessage | undefined {
    const match = /^(\d+)\/(\d+)$/.exec(ref);
    return match ? discordMessage(match[1] as string, match[2] as string) : undefined;
  }

  // ------------------------------------------------------------------ batch studies

  /**
   * Whether batch-study items for `channel` are posted here: a channel of a server the bot is in
   * (in the client's cache since ready) and, with an allow-list, one of those.
   */
  ownsChannel(channel: string): boolean {
    if (this.channels && !this.channels.includes(channel)) return false;
    return this.client.channels.cache.has(channel);
  }

  postResult(channel: string, result: ImagineResult): Promise<PostedMessage[]> {
    return this.flow.publishResult(channel, result);
  }

  postFailure(channel: string, error: unknown): Promise<PostedMessage | undefined> {
    return this.flow.publishFailure(channel, error);
  }

  resumeReply(
    handle: string,
    outcome: { result: ImagineResult } | { error: unknown },
    requester: string,
  ): Promise<PostedMessage[] | undefined> {
    return this.flow.publishResumed(handle, outcome, requester);
  }

  resumeConversation(handle: string): Conversation | undefined {
    return this.client.isReady() ? resumeInteraction(this.client, handle, this.emoji) : undefined;
  }

  // ------------------------------------------------------------------ events

  private onInteraction(interaction: Interaction): void {
    if (!interaction.isChatInputCommand()) return;
    const log = this.logger.child({ interaction: interaction.id });
    void this.flow.processCommand({
      id: interaction.id,
      command: interaction.commandName,
      options: Object.fromEntries(
        interaction.options.data.map((option) => [option.name, option.value]),
      ),
      user: interaction.user.id,
      ...(interaction.guildId ? { server: interaction.guildId } : {}),
      channel: interaction.channelId,
      isAdmin: async () => canManageServer(interaction),
      conversation: new InteractionConversation(interaction, this.emoji, log),
    });
  }
}

function canManageServer(interaction: ChatInputCommandInteraction): boolean {
  return interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild) ?? false;
}

function reactionEvent(
  reaction: MessageReaction | PartialMessageReaction,
  user: User | PartialUser,
  added: boolean,
) {
  // Partial messages (posted before a restart) carry their ids, which is all a vote needs.
  const message = reaction.message;
  return {
    added,
    user: user.id,
    emoji: reaction.emoji.name,
    // A custom (server) emoji has an id and is never a vote.
    custom: reaction.emoji.id !== null,
    message: discordMessage(message.channelId, message.id),
    // Reactions on old messages come with partial users.
    isBot: async () => (user.partial ? await user.fetch() : user).bot,
  };
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
