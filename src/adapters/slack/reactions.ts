/**
 * Slack reactions over the Web API: the bot's voting reactions (reactions.add, by name without
 * colons). A bot cannot remove another person's reaction in Slack, so a replaced vote's old
 * reaction stays visible but no longer counts. Listing a message's reactions (reactions.get) for
 * reconciliation goes here too.
 */
import type { webApi } from "@slack/bolt";
import type { PostedMessage } from "../chat/platform.js";

type WebClient = InstanceType<typeof webApi.WebClient>;

/** How a posted image is referred to in the vote store: "<channel id>:<message ts>". */
export function slackMessageRef(channel: string, ts: string): string {
  return `${channel}:${ts}`;
}

export function slackMessage(channel: string, ts: string): PostedMessage {
  return { channel, id: ts, ref: slackMessageRef(channel, ts) };
}

/** The Slack error code of a failed Web API call ("already_reacted", "invalid_blocks"). */
export function slackErrorCode(error: unknown): string | undefined {
  return (error as { data?: { error?: string } } | undefined)?.data?.error;
}

/** Adds the bot's reaction (a name such as "one"); one it already added is fine. */
export async function addSlackReaction(
  client: WebClient,
  message: PostedMessage,
  name: string,
): Promise<void> {
  try {
    await client.reactions.add({ channel: message.channel, timestamp: message.id, name });
  } catch (error) {
    if (slackErrorCode(error) !== "already_reacted") throw error;
  }
}
