/**
 * Discord reactions over REST: the bot's own voting reactions (PUT …/reactions/{emoji}/@me) and
 * removing a person's replaced vote (DELETE …/reactions/{emoji}/{user}, which needs Manage
 * Messages). Listing a message's reactions (GET …/reactions/{emoji}) for reconciliation goes
 * here too.
 */
import { DiscordAPIError, type REST, Routes } from "discord.js";
import { type PostedMessage, ReactionsForbidden } from "../chat/platform.js";

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
