/**
 * Slack formatting of the shared replies (src/adapters/shared/replies.ts): mrkdwn escaping, the
 * progress line and the finished image as Block Kit. Nothing here reads a generation's arm.
 */
import type { ImageReply } from "../shared/replies.js";
import { votingLegend } from "../shared/replies.js";
import type { EmojiScale } from "../shared/votes.js";

/** Slack's mrkdwn needs &, < and > escaped; everything else is shown as typed. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The progress message: who asked for what, and where the job is. */
export function progressLine(subject: string, user: string, progress: string): string {
  return `<@${user}> asked for *${escapeMrkdwn(subject)}* — ${progress}`;
}

/** The finished image: subject, the uploaded file, prompt (absent in a blind study), seed, legend. */
export function imageBlocks(
  reply: ImageReply,
  fileId: string,
  /** Who asked (/imagine); undefined for a batch study's item. */
  user: string | undefined,
  scale: EmojiScale,
): { text: string; blocks: object[] } {
  const prompt =
    reply.prompt !== undefined
      ? `*Prompt:* ${escapeMrkdwn(reply.prompt)}`
      : "*Prompt:* hidden while the blind study runs";
  return {
    text: `${reply.subject} (seed ${reply.seed})`,
    blocks: [
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: `*${escapeMrkdwn(reply.subject)}*${user === undefined ? "" : ` — asked by <@${user}>`}`,
        },
      },
      { type: "image", slack_file: { id: fileId }, alt_text: reply.altText.slice(0, 2000) },
      { type: "section", text: { type: "mrkdwn", text: prompt.slice(0, 3000) } },
      {
        type: "context",
        elements: [
          { type: "mrkdwn", text: `seed ${reply.seed}` },
          { type: "mrkdwn", text: votingLegend(scale, (name) => `:${name}:`) },
        ],
      },
    ],
  };
}
