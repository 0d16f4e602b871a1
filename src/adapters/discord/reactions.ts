/**
 * Discord reactions over REST: the bot's own voting reactions (PUT …/reactions/{emoji}/@me) and
 * removing a person's replaced vote (DELETE …/reactions/{emoji}/{user}, which needs Manage
 * Messages), and listing who has each voting reaction (GET …/reactions/{emoji}, paginated) for
 * reconciliation. discord.js's REST client queues requests per rate-limit bucket and waits out
 * a 429 itself, so a long reconciliation never trips Discord's limits.
 */
import { type APIMessage, type APIUser, DiscordAPIError, type REST, Routes } from "discord.js";
import { type PostedMessage, ReactionsForbidden, type ReactionUsers } from "../chat/platform.js";

/** Discord's largest page of GET …/reactions/{emoji}. */
export const REACTION_PAGE_SIZE = 100;
/** Discord's error code for a message that no longer exists. */
const UNKNOWN_MESSAGE = 10008;

/** How an image message is referred to in the vote store: "<channel id>/<message id>". */
export function discordMessageRef(channelId: string, messageId: string): string {
  return `${channelId}/${messageId}`;
}

export function discordMessage(channel: string, id: string): PostedMessage {
  return { channel, id, ref: discordMessageRef(channel, id) };
}

export function isForbidden(error: unknown): boolean {
  return error instanceof DiscordAPIError && error.status === 403;
}

export async function addDiscordReaction(
  rest: REST,
  message: PostedMessage,
  emoji: string,
): Promise<void> {
  try {
    await rest.put(
      Routes.channelMessageOwnReaction(message.channel, message.id, encodeURIComponent(emoji)),
    );
  } catch (error) {
    if (isForbidden(error)) {
      throw new ReactionsForbidden("missing Add Reactions in this channel", { cause: error });
    }
    throw error;
  }
}

/** False when the bot may not remove it (no Manage Messages): the old reaction stays. */
export async function removeDiscordReaction(
  rest: REST,
  message: PostedMessage,
  emoji: string,
  user: string,
): Promise<boolean> {
  try {
    await rest.delete(
      Routes.channelMessageUserReaction(
        message.channel,
        message.id,
        encodeURIComponent(emoji),
        user,
      ),
    );
    return true;
  } catch (error) {
    if (isForbidden(error)) return false;
    throw error;
  }
}

/**
 * Who has each of `emojis` on a message (every page, the bot itself left out), or undefined
 * when the message was deleted. The message itself comes first: its reaction counts say which
 * emoji anyone but the bot has, so only those are listed (Discord allows a bot 50 requests a
 * second in all, and most messages have few votes).
 */
export async function listDiscordReactions(
  rest: REST,
  message: PostedMessage,
  emojis: readonly string[],
  botUserId: string | undefined,
  signal: AbortSignal,
): Promise<ReactionUsers[] | undefined> {
  let counts: APIMessage["reactions"];
  try {
    counts = (
      (await rest.get(Routes.channelMessage(message.channel, message.id), { signal })) as APIMessage
    ).reactions;
  } catch (error) {
    if (error instanceof DiscordAPIError && error.code === UNKNOWN_MESSAGE) return undefined;
    throw error;
  }
  const reactions: ReactionUsers[] = [];
  for (const emoji of emojis) {
    // A unicode emoji by its name; a custom one as the scale writes it, "name:id".
    const count = counts?.find((r) =>
      r.emoji.id ? `${r.emoji.name}:${r.emoji.id}` === emoji : r.emoji.name === emoji,
    );
    if (count === undefined || count.count <= (count.me ? 1 : 0)) continue;
    const users = await reactionUsers(rest, message, emoji, botUserId, signal);
    if (users === undefined) return undefined;
    if (users.length > 0) reactions.push({ emoji, users });
  }
  return reactions;
}

/** Everyone but the bot with `emoji` on a message, page by page; undefined if it was deleted. */
async function reactionUsers(
  rest: REST,
  message: PostedMessage,
  emoji: string,
  botUserId: string | undefined,
  signal: AbortSignal,
): Promise<string[] | undefined> {
  const users: string[] = [];
  let after: string | undefined;
  for (;;) {
    signal.throwIfAborted();
    let page: APIUser[];
    try {
      page = (await rest.get(
        Routes.channelMessageReaction(message.channel, message.id, encodeURIComponent(emoji)),
        {
          query: new URLSearchParams({
            limit: String(REACTION_PAGE_SIZE),
            ...(after !== undefined ? { after } : {}),
          }),
          signal,
        },
      )) as APIUser[];
    } catch (error) {
      if (error instanceof DiscordAPIError && error.code === UNKNOWN_MESSAGE) return undefined;
      throw error;
    }
    for (const user of page) if (user.id !== botUserId) users.push(user.id);
    if (page.length < REACTION_PAGE_SIZE) return users;
    after = page[page.length - 1]?.id;
  }
}
