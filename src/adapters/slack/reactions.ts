/**
 * Slack reactions over the Web API: the bot's voting reactions (reactions.add, by name without
 * colons). A bot cannot remove another person's reaction in Slack, so a replaced vote's old
 * reaction stays visible but no longer counts. Listing a message's reactions (reactions.get with
 * full=true, every user of every reaction in one answer) is for reconciliation; the Web API
 * client waits out a 429 (Retry-After) and retries it.
 */
import type { webApi } from "@slack/bolt";
import type { PostedMessage, ReactionUsers } from "../chat/platform.js";

type WebClient = InstanceType<typeof webApi.WebClient>;

/** How a posted image is referred to in the vote store: "<channel id>:<message ts>". */
export function slackMessageRef(channel: string, ts: string): string {
  return `${channel}:${ts}`;
}

export function slackMessage(channel: string, ts: string): PostedMessage {
  return { channel, id: ts, ref: slackMessageRef(channel, ts) };
}

/**
 * The time of a Slack event from its event_ts ("1700000000.123456", seconds with microseconds),
 * to the millisecond; undefined when it is not one.
 */
export function slackEventTime(eventTs: unknown): Date | undefined {
  const match = typeof eventTs === "string" ? /^(\d{1,12})(?:\.(\d{1,6}))?$/.exec(eventTs) : null;
  if (!match) return undefined;
  const ms = Number(match[1]) * 1000 + Number((match[2] ?? "").padEnd(3, "0").slice(0, 3));
  return new Date(ms);
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

/** Errors of reactions.get meaning the message is gone (deleted, or its channel archived away). */
const GONE = new Set(["message_not_found", "channel_not_found", "thread_not_found"]);

/**
 * Who has which reaction on a message (the bot itself left out), or undefined when the message
 * is gone.
 */
export async function listSlackReactions(
  client: WebClient,
  message: PostedMessage,
  botUserId: string,
  signal: AbortSignal,
): Promise<ReactionUsers[] | undefined> {
  signal.throwIfAborted();
  let answer: Awaited<ReturnType<WebClient["reactions"]["get"]>>;
  try {
    answer = await client.reactions.get({
      channel: message.channel,
      timestamp: message.id,
      full: true,
    });
  } catch (error) {
    if (GONE.has(slackErrorCode(error) ?? "")) return undefined;
    throw error;
  }
  const reactions: ReactionUsers[] = [];
  for (const reaction of answer.message?.reactions ?? []) {
    if (!reaction.name) continue;
    const users = (reaction.users ?? []).filter((user) => user !== botUserId);
    if (users.length > 0) reactions.push({ emoji: reaction.name, users });
  }
  return reactions;
}
