/**
 * Slack's side of one command's replies (the chat flow's Conversation) and Slack formatting:
 * mrkdwn escaping, the progress message (posted, then updated in place), images as Block Kit
 * naming an uploaded file, reports as mrkdwn with their files uploaded to the channel, private
 * refusals (the slash command's response_url, else chat.postEphemeral).
 *
 * Images: the PNG is uploaded with files.uploadV2 (files.getUploadURLExternal → upload →
 * files.completeUploadExternal, shared to no channel) and the message shows it with an image
 * block (`slack_file: {id}`), so the bot knows that message's ts for sure and can record it.
 * Nothing here reads a generation's arm.
 */
import type { RespondFn, webApi } from "@slack/bolt";
import type { PromptsResult, ReportFile, ReportResult } from "../../commands/command.js";
import type { Logger } from "../../core/types.js";
import type { Conversation, ImageMessage, PostedMessage } from "../chat/platform.js";
import { type ImageReply, promptLines, votingLegend } from "../chat/replies.js";
import type { EmojiScale } from "../chat/votes.js";
import { slackErrorCode, slackMessage } from "./reactions.js";

type WebClient = InstanceType<typeof webApi.WebClient>;

/** Slack's cap on a section block's text. */
const MAX_SECTION = 3_000;

/** Slack's mrkdwn needs &, < and > escaped; everything else is shown as typed. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The progress message: who asked for what, and where the job is. */
export function progressLine(subject: string, user: string, progress: string): string {
  return `<@${user}> asked for *${escapeMrkdwn(subject)}* — ${progress}`;
}

/**
 * The finished image: subject, the uploaded file, prompt (hidden in a blind study), a study's
 * survey label or else the seed, legend.
 */
export function imageBlocks(
  message: ImageMessage,
  fileId: string,
  scale: EmojiScale,
): { text: string; blocks: object[] } {
  const reply: ImageReply = message.image;
  const prompt =
    reply.prompt !== undefined
      ? `*Prompt:* ${escapeMrkdwn(reply.prompt)}`
      : "*Prompt:* hidden while the blind study runs";
  const asker = message.requester === undefined ? "" : ` — asked by <@${message.requester}>`;
  const context: { type: "mrkdwn"; text: string }[] = [];
  if (reply.label !== undefined) context.push({ type: "mrkdwn", text: escapeMrkdwn(reply.label) });
  if (reply.seed !== undefined) context.push({ type: "mrkdwn", text: `seed ${reply.seed}` });
  if (message.votable) {
    context.push({ type: "mrkdwn", text: votingLegend(scale, (name) => `:${name}:`) });
  }
  const blocks: object[] = [
    { type: "section", text: { type: "mrkdwn", text: `*${escapeMrkdwn(reply.subject)}*${asker}` } },
    { type: "image", slack_file: { id: fileId }, alt_text: reply.altText.slice(0, 2000) },
    { type: "section", text: { type: "mrkdwn", text: prompt.slice(0, MAX_SECTION) } },
    // Slack rejects a context block without elements.
    ...(context.length > 0 ? [{ type: "context", elements: context }] : []),
  ];
  if (message.notes.length > 0) {
    blocks.push({
      type: "section",
      text: { type: "mrkdwn", text: escapeMrkdwn(message.notes.join("\n")).slice(0, MAX_SECTION) },
    });
  }
  const detail = reply.label ?? (reply.seed === undefined ? undefined : `seed ${reply.seed}`);
  return { text: detail === undefined ? reply.subject : `${reply.subject} (${detail})`, blocks };
}

const FENCE = "```";

/**
 * A report as mrkdwn: its text in a code block (tables keep their columns), or, when longer than
 * a section holds, attached as report.txt.
 */
export function reportMessage(report: ReportResult): {
  text: string;
  blocks: object[];
  files: ReportFile[];
} {
  const body = report.text.split(FENCE).join("'''").trimEnd();
  const block = `${FENCE}\n${escapeMrkdwn(body)}\n${FENCE}`;
  const firstLine = report.text.split("\n", 1)[0] ?? "";
  if (block.length <= MAX_SECTION) {
    return {
      text: firstLine,
      blocks: [{ type: "section", text: { type: "mrkdwn", text: block } }],
      files: report.files,
    };
  }
  const attached: ReportFile = {
    name: "report.txt",
    contentType: "text/plain",
    content: Buffer.from(report.text, "utf8"),
  };
  return {
    text: firstLine,
    blocks: [
      {
        type: "section",
        text: { type: "mrkdwn", text: `*${escapeMrkdwn(firstLine)}*\nThe report is attached.` },
      },
    ],
    files: [attached, ...report.files],
  };
}

export interface SlackMessageOptions {
  /**
   * Waits before retrying the image message while Slack is still processing the upload
   * (invalid_blocks on a fresh slack_file). Default 1, 2 and 4 seconds.
   */
  fileRetryDelaysMs?: readonly number[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function uploadedFileId(upload: unknown): string | undefined {
  const files = (upload as { files?: { files?: { id?: string }[] }[] }).files;
  return files?.[0]?.files?.[0]?.id;
}

/**
 * Uploads the PNG and shows it in place of the message `replaceTs` (the progress message) or as
 * a new message. Returns the image message.
 */
export async function publishImage(
  client: WebClient,
  channel: string,
  message: ImageMessage,
  scale: EmojiScale,
  options: SlackMessageOptions,
  log: Logger,
  replaceTs?: string,
): Promise<PostedMessage> {
  const reply = message.image;
  const upload = await client.files.uploadV2({
    file: reply.png,
    filename: reply.fileName,
    title: reply.subject.slice(0, 250),
    alt_text: reply.altText.slice(0, 1000),
  });
  const fileId = uploadedFileId(upload);
  if (fileId === undefined) throw new Error("files.uploadV2 returned no file id");
  const payload = imageBlocks(message, fileId, scale);
  const delays = options.fileRetryDelaysMs ?? [1000, 2000, 4000];
  for (let attempt = 0; ; attempt++) {
    try {
      const ts =
        replaceTs !== undefined
          ? ((await client.chat.update({ channel, ts: replaceTs, ...payload })).ts ?? replaceTs)
          : (await client.chat.postMessage({ channel, ...payload })).ts;
      if (ts === undefined) throw new Error("Slack returned no message ts");
      return slackMessage(channel, ts);
    } catch (error) {
      // Slack processes an upload asynchronously: a slack_file it has not finished is
      // invalid_blocks for a moment.
      const delay = delays[attempt];
      if (slackErrorCode(error) !== "invalid_blocks" || delay === undefined) throw error;
      log.info({ attempt: attempt + 1, delay }, "uploaded image not ready; retrying");
      await sleep(delay);
    }
  }
}

/** The slash command a conversation answers. */
export interface SlashInvocation {
  channel: string;
  user: string;
  /** The subject typed (for the progress line), empty for commands without one. */
  subject: string;
  /** Where private answers go; chat.postEphemeral when absent. */
  respond?: RespondFn;
}

/** One slash command's replies. */
export class SlackConversation implements Conversation {
  /** The progress message, until something replaces it. */
  private statusTs: string | undefined;

  constructor(
    private readonly client: WebClient,
    private readonly invocation: SlashInvocation,
    private readonly scale: EmojiScale,
    private readonly options: SlackMessageOptions,
    private readonly log: Logger,
  ) {}

  /** Slack has had its acknowledgement (within 3 s) before the work started. */
  async begin(): Promise<void> {}

  async status(progress: string): Promise<void> {
    const { channel, subject, user } = this.invocation;
    const text = progressLine(subject, user, progress);
    if (this.statusTs === undefined) {
      this.statusTs = (await this.client.chat.postMessage({ channel, text })).ts;
    } else {
      await this.client.chat.update({ channel, ts: this.statusTs, text });
    }
  }

  async refuse(text: string): Promise<void> {
    await this.whisperMrkdwn(`:no_entry: ${escapeMrkdwn(text)}`);
  }

  async whisper(text: string): Promise<void> {
    await this.whisperMrkdwn(escapeMrkdwn(text));
  }

  /** The asker's business: take back the public message, tell them only. */
  private async whisperMrkdwn(mrkdwn: string): Promise<void> {
    const ts = this.takeStatus();
    if (ts !== undefined) {
      await this.client.chat
        .delete({ channel: this.invocation.channel, ts })
        .catch((error: unknown) => this.log.warn({ err: error }, "progress message not deleted"));
    }
    await this.tellPrivately(mrkdwn);
  }

  async fail(text: string): Promise<void> {
    const shown = `:warning: ${escapeMrkdwn(text)}`;
    try {
      await this.say({ text: shown, blocks: [] });
    } catch (error) {
      this.log.warn({ err: error }, "failure not posted; telling the asker");
      await this.tellPrivately(shown);
    }
  }

  postImage(message: ImageMessage, _index: number): Promise<PostedMessage> {
    return publishImage(
      this.client,
      this.invocation.channel,
      message,
      this.scale,
      this.options,
      this.log,
      this.takeStatus(),
    );
  }

  async prompts(result: PromptsResult): Promise<void> {
    await this.say({ text: escapeMrkdwn(promptLines(result).join("\n")) });
  }

  async report(result: ReportResult): Promise<void> {
    const message = reportMessage(result);
    await this.say({ text: message.text, blocks: message.blocks });
    if (message.files.length === 0) return;
    // Shared to the channel like Discord's attachments: the chart PNG, the CSV/JSON export.
    await this.client.files.uploadV2({
      channel_id: this.invocation.channel,
      file_uploads: message.files.map((file) => ({
        file: file.content,
        filename: file.name,
        title: file.name,
      })),
    });
  }

  /** Replaces the progress message, or posts a new message. */
  private async say(payload: { text: string; blocks?: object[] }): Promise<void> {
    const channel = this.invocation.channel;
    const ts = this.takeStatus();
    if (ts !== undefined) await this.client.chat.update({ channel, ts, ...payload });
    else await this.client.chat.postMessage({ channel, ...payload });
  }

  private takeStatus(): string | undefined {
    const ts = this.statusTs;
    this.statusTs = undefined;
    return ts;
  }

  private async tellPrivately(text: string): Promise<void> {
    const { channel, user, respond } = this.invocation;
    try {
      if (respond !== undefined) {
        await respond({ response_type: "ephemeral", replace_original: false, text });
      } else {
        await this.client.chat.postEphemeral({ channel, user, text });
      }
    } catch (error) {
      this.log.warn({ err: error }, "ephemeral reply not delivered");
    }
  }
}
