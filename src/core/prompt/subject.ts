import { UserError } from "../errors.js";

// C0/C1 controls, DEL, and bidi overrides that can disguise text in chat clients.
// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Platform markup that is not part of what the image should show, removed in this order:
 * - Discord mentions and references: `<@123>`, `<@!123>`, `<@&123>`, `<#123>`, custom emoji
 *   `<:name:123>` and `<a:name:123>`, timestamps `<t:123:R>`, command mentions `</name:123>`;
 * - Slack mentions and references: `<@U123>`, `<@U123|name>`, `<#C123|name>`, `<!here>`,
 *   `<!channel>`, `<!subteam^S1|@team>`, `<!date^…|fallback>`;
 * - links in angle brackets: `<https://…>` is removed, `<https://…|label>` keeps its label
 *   (Slack turns a typed "example.com" into `<http://example.com|example.com>`);
 * - markdown emphasis markers `**`, `__`, `~~`, backticks and `||spoiler||` bars (the text
 *   between them stays);
 * - Slack's HTML escapes `&lt;`, `&gt;`, `&amp;` are decoded last.
 */
const MENTION =
  /<(?:[@#][!&]?[A-Za-z0-9]+(?:\|[^<>]*)?|a?:[A-Za-z0-9_~]+:\d+|t:-?\d+(?::[A-Za-z])?|\/[^<>:\s]+(?: [^<>:]+)*:\d+|![^<>]*)>/g;
const LINK = /<(?:https?|mailto|ftp):[^<>|\s]*(?:\|([^<>]*))?>/gi;
const MARKERS = /\*\*|__|~~|\|\||`+/g;

/**
 * Removes platform mentions, channel and emoji references, angle-bracket links and markdown
 * markers from a chat message, and collapses whitespace. Plain text passes through unchanged
 * apart from whitespace.
 *
 * @example
 * stripMarkup("<@123> draw **a red fox** <:fox:42>"); // "draw a red fox"
 */
export function stripMarkup(raw: string): string {
  return raw
    .replace(MENTION, " ")
    .replace(LINK, (_link, label: string | undefined) => ` ${label ?? ""} `)
    .replace(MARKERS, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}

export interface ValidateSubjectOptions {
  /** Strip chat mentions and markup first (stripMarkup); chat adapters and imagine set it. */
  stripMarkup?: boolean;
}

/**
 * Checks a subject as typed and returns it trimmed. Refuses, with a message safe to show the
 * person: an empty or whitespace-only subject, one longer than maxLength characters (code
 * points, so an emoji counts once), and control characters. With `stripMarkup`, mentions and
 * markup are removed before the empty and length checks, so "<@123> **  **" is empty.
 */
export function validateSubject(
  raw: string,
  maxLength: number,
  options: ValidateSubjectOptions = {},
): string {
  const trimmed = raw.trim();
  const control = CONTROL.exec(trimmed);
  if (trimmed !== "" && control) {
    const code = (control[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
    throw new UserError(
      "SUBJECT_INVALID",
      `The subject contains a control character (U+${code}); use plain text on one line.`,
    );
  }
  const subject = options.stripMarkup ? stripMarkup(trimmed) : trimmed;
  if (subject === "") {
    throw new UserError(
      "SUBJECT_INVALID",
      trimmed !== "" && options.stripMarkup
        ? 'The subject is empty once mentions, links and formatting are removed: say what the image should show, for example "a lighthouse".'
        : 'The subject is empty: say what the image should show, for example "a lighthouse".',
    );
  }
  const length = [...subject].length;
  if (length > maxLength) {
    throw new UserError(
      "SUBJECT_INVALID",
      `The subject is ${length} characters long; the limit is ${maxLength}. Shorten it and try again.`,
    );
  }
  return subject;
}
