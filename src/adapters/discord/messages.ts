/**
 * Discord's side of one command's replies (the chat flow's Conversation): the interaction is
 * deferred ("thinking…") when work begins, progress edits the deferred reply, the first image
 * replaces it and further images are follow-ups, a refusal is ephemeral (in place of a deferred
 * reply, which is deleted), and results are Discord markdown with attachments.
 */
import {
  AttachmentBuilder,
  type ChatInputCommandInteraction,
  escapeMarkdown,
  type InteractionEditReplyOptions,
  type Message,
  MessageFlags,
} from "discord.js";
import type { PromptsResult, ReportResult } from "../../commands/command.js";
import type { Logger } from "../../core/types.js";
import type { Conversation, ImageMessage, PostedMessage } from "../chat/platform.js";
import { promptLines, votingLegend } from "../chat/replies.js";
import type { EmojiScale } from "../chat/votes.js";
import { discordMessage } from "./reactions.js";
import { interactionHandle } from "./resume.js";

/** Discord's cap on message content. */
export const MAX_CONTENT = 2_000;

export function truncate(text: string): string {
  return text.length <= MAX_CONTENT ? text : `${text.slice(0, MAX_CONTENT - 1)}…`;
}

/**
 * The text under an image: subject, a study's survey label, prompt and seed (neither in a study),
 * legend; never the arm.
 */
export function caption(message: ImageMessage, scale: EmojiScale): string {
  const { image } = message;
  const lines = [`**${escapeMarkdown(image.subject)}**`];
  if (image.label !== undefined) lines.push(image.label);
  if (image.prompt !== undefined) lines.push(`Prompt: ${escapeMarkdown(image.prompt)}`);
  if (image.seed !== undefined) lines.push(`Seed: ${image.seed}`);
  if (message.votable) lines.push(votingLegend(scale));
  lines.push(...message.notes);
  return truncate(lines.join("\n"));
}

/** An image message's content and its PNG attachment (named by id only, alt text the subject). */
export function imagePayload(
  message: ImageMessage,
  scale: EmojiScale,
): { content: string; files: AttachmentBuilder[] } {
  const { image } = message;
  return {
    content: caption(message, scale),
    files: [new AttachmentBuilder(image.png, { name: image.fileName, description: image.altText })],
  };
}

const FENCE = "`".repeat(3);

/** A report as a code block, or as report.txt when too long; its files attached. */
export function reportPayload(report: ReportResult): InteractionEditReplyOptions {
  const files = report.files.map(
    (file) => new AttachmentBuilder(file.content, { name: file.name }),
  );
  const block = `${FENCE}\n${report.text.split(FENCE).join("'".repeat(3)).trimEnd()}\n${FENCE}`;
  if (block.length <= MAX_CONTENT) return { content: block, files };
  files.unshift(new AttachmentBuilder(Buffer.from(report.text, "utf8"), { name: "report.txt" }));
  return { content: "The report is attached.", files };
}

export function promptsContent(result: PromptsResult): string {
  return truncate(escapeMarkdown(promptLines(result).join("\n")));
}

/** One interaction's replies. */
export class InteractionConversation implements Conversation {
  private deferred = false;
  private answered = false;
  /** An image already replaced the deferred reply: later messages are follow-ups. */
  private imagePosted = false;
  /** When the interaction arrived: Discord's window for answering it runs from about then. */
  private readonly receivedAt = Date.now();

  constructor(
    private readonly interaction: ChatInputCommandInteraction,
    private readonly scale: EmojiScale,
    private readonly log: Logger,
  ) {}

  async begin(): Promise<void> {
    if (this.deferred) return;
    await this.interaction.deferReply();
    this.deferred = true;
  }

  async status(text: string): Promise<void> {
    if (!this.deferred || this.answered) return;
    await this.interaction.editReply({ content: text });
  }

  /** Ephemeral like a refusal: Discord shows both the same way. */
  whisper(text: string): Promise<void> {
    return this.refuse(text);
  }

  async refuse(text: string): Promise<void> {
    const payload = {
      content: truncate(text),
      flags: MessageFlags.Ephemeral as const,
      allowedMentions: { parse: [] },
    };
    this.answered = true;
    if (!this.deferred) {
      await this.interaction.reply(payload);
      return;
    }
    await this.interaction.deleteReply().catch((error: unknown) => {
      this.log.warn({ err: error }, "could not delete the deferred reply");
    });
    await this.interaction.followUp(payload);
  }

  async fail(text: string): Promise<void> {
    if (this.imagePosted) {
      await this.interaction.followUp({ content: truncate(text), allowedMentions: { parse: [] } });
      return;
    }
    await this.finish({ content: truncate(text), files: [] });
  }

  async postImage(message: ImageMessage, index: number): Promise<PostedMessage> {
    const payload = imagePayload(message, this.scale);
    const posted =
      index === 0
        ? await this.finish(payload)
        : await this.interaction.followUp({ allowedMentions: { parse: [] }, ...payload });
    this.imagePosted = true;
    return discordMessage(posted.channelId, posted.id);
  }

  async prompts(result: PromptsResult): Promise<void> {
    await this.finish({ content: promptsContent(result) });
  }

  async report(result: ReportResult): Promise<void> {
    await this.finish(reportPayload(result));
  }

  /** Lets a restarted chat process edit this reply (resume.ts). */
  replyHandle(): string {
    return interactionHandle({
      applicationId: this.interaction.applicationId,
      token: this.interaction.token,
      receivedAt: this.receivedAt,
    });
  }

  /** Replaces "thinking…" or the progress line with the final reply (or answers, if not deferred). */
  private async finish(options: InteractionEditReplyOptions): Promise<Message> {
    this.answered = true;
    if (!this.deferred) {
      await this.interaction.deferReply();
      this.deferred = true;
    }
    return this.interaction.editReply({ allowedMentions: { parse: [] }, ...options });
  }
}
