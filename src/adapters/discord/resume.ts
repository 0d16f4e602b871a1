/**
 * Answering an interaction from a process other than the one that received it: a chat process
 * restarted mid-job (the shared render queue) edits the original "thinking…" reply through the
 * interaction's webhook, which Discord accepts for 15 minutes after the command. The handle is
 * the interaction's application id, token and the time it arrived, as JSON; it travels in the
 * job's data and means nothing once the window has closed.
 */
import {
  type Client,
  type InteractionEditReplyOptions,
  InteractionWebhook,
  MessageFlags,
} from "discord.js";
import type { PromptsResult, ReportResult } from "../../commands/command.js";
import type { Conversation, ImageMessage, PostedMessage } from "../chat/platform.js";
import type { EmojiScale } from "../chat/votes.js";
import { imagePayload, promptsContent, reportPayload, truncate } from "./messages.js";
import { discordMessage } from "./reactions.js";

/** Discord takes webhook edits of an interaction for 15 minutes; half a minute is kept spare. */
export const INTERACTION_WINDOW_MS = 15 * 60_000 - 30_000;

interface Handle {
  applicationId: string;
  token: string;
  /**
   * When the receiving process got the interaction, ms since the epoch (moments after Discord
   * made it; the window's spare half minute covers the difference).
   */
  receivedAt: number;
}

export function interactionHandle(handle: Handle): string {
  return JSON.stringify(handle);
}

function parseHandle(text: string): Handle | undefined {
  try {
    const value = JSON.parse(text) as Partial<Handle>;
    if (
      typeof value.applicationId === "string" &&
      typeof value.token === "string" &&
      typeof value.receivedAt === "number"
    ) {
      return value as Handle;
    }
  } catch {
    // Not ours (another platform's handle): nothing to resume.
  }
  return undefined;
}

/** The conversation a handle names, or undefined once Discord no longer takes its edits. */
export function resumeInteraction(
  client: Client<true>,
  text: string,
  scale: EmojiScale,
  now = Date.now(),
): Conversation | undefined {
  const handle = parseHandle(text);
  if (handle === undefined || now - handle.receivedAt >= INTERACTION_WINDOW_MS) return undefined;
  return new ResumedInteraction(
    new InteractionWebhook(client, handle.applicationId, handle.token),
    scale,
  );
}

/**
 * An interaction already deferred by the process that received it: every answer edits or
 * follows up the original reply.
 */
class ResumedInteraction implements Conversation {
  private imagePosted = false;

  constructor(
    private readonly webhook: InteractionWebhook,
    private readonly scale: EmojiScale,
  ) {}

  async begin(): Promise<void> {}

  async status(text: string): Promise<void> {
    await this.edit({ content: truncate(text) });
  }

  whisper(text: string): Promise<void> {
    return this.refuse(text);
  }

  async refuse(text: string): Promise<void> {
    await this.webhook.send({
      content: truncate(text),
      flags: MessageFlags.Ephemeral,
      allowedMentions: { parse: [] },
    });
  }

  async fail(text: string): Promise<void> {
    if (this.imagePosted) {
      await this.webhook.send({ content: truncate(text), allowedMentions: { parse: [] } });
      return;
    }
    await this.edit({ content: truncate(text), files: [] });
  }

  async postImage(message: ImageMessage, index: number): Promise<PostedMessage> {
    const payload = imagePayload(message, this.scale);
    const posted =
      index === 0
        ? await this.edit(payload)
        : await this.webhook.send({ allowedMentions: { parse: [] }, ...payload });
    this.imagePosted = true;
    return discordMessage(posted.channelId, posted.id);
  }

  async prompts(result: PromptsResult): Promise<void> {
    await this.edit({ content: promptsContent(result) });
  }

  async report(result: ReportResult): Promise<void> {
    await this.edit(reportPayload(result));
  }

  private edit(options: InteractionEditReplyOptions) {
    return this.webhook.editMessage("@original", { allowedMentions: { parse: [] }, ...options });
  }
}
