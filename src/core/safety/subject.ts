/**
 * The subject gate: every entry point that takes a subject (chat and CLI `imagine` and
 * `prompt`, study batches through the pipeline) passes it through gateSubject, so Discord,
 * Slack and the CLI clean, refuse and filter it the same way:
 *
 *   invisible, format and bidi characters removed → NFKC → whitespace and newlines collapsed
 *   → control characters refused → links refused → mentions and markup stripped
 *   → empty and length checks → the explicit filter (which matches the TR39 skeleton)
 *
 * Refusals are UserErrors whose messages are safe to show the person (chat adapters show them
 * privately); they never echo the blocked word or the link.
 */
import { UserError } from "../errors.js";
import type { TextFilter } from "./filter.js";
import { INVISIBLE } from "./text.js";

const INVISIBLE_ALL = new RegExp(INVISIBLE.source, "gu");
/** An emoji, with an optional skin tone or presentation selector, before a zero-width joiner. */
const PICTOGRAPH_BEFORE = /\p{Extended_Pictographic}[\u{1F3FB}-\u{1F3FF}\uFE0F]?$/u;
const PICTOGRAPH_AFTER = /^\p{Extended_Pictographic}/u;

/** True when the zero-width joiner at `offset` joins two emoji (👩‍💻), where it draws one glyph. */
function joinsEmoji(text: string, offset: number): boolean {
  return (
    PICTOGRAPH_BEFORE.test(text.slice(Math.max(0, offset - 4), offset)) &&
    PICTOGRAPH_AFTER.test(text.slice(offset + 1, offset + 3))
  );
}

/**
 * The text as every platform treats it: invisible, format and bidi-control characters removed
 * (U+200B–U+200F, U+202A–U+202E, U+2060–U+206F, U+2066–U+2069, U+FEFF, U+061C, soft hyphen,
 * tags…; a zero-width joiner inside an emoji sequence stays), NFKC (fullwidth and styled letters
 * become plain ones), every run of whitespace, newlines included, one space, trimmed.
 *
 * @example
 * cleanText("ａ\u200b ｒｅｄ\nfox"); // "a red fox"
 */
export function cleanText(raw: string): string {
  return raw
    .replace(INVISIBLE_ALL, (ch: string, offset: number) =>
      ch === "\u200d" && joinsEmoji(raw, offset) ? ch : "",
    )
    .normalize("NFKC")
    .replace(/[\s\u0085]+/gu, " ")
    .trim();
}

// C0 and C1 controls and DEL; whitespace controls were collapsed to spaces before this runs.
// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * Links in any form a chat client could turn into a link: markdown masked links
 * `[label](target)`, angle-bracket links `<https://…>` and Slack's `<https://…|label>`,
 * URLs with a scheme, `www.` hosts, host names with a path (`discord.gg/x`, `evil.example/a`),
 * and host names on common top-level domains (`example.com`).
 */
const LINK_PATTERNS: readonly RegExp[] = [
  /\[[^\]]*\]\(\s*<?[^)\s]+>?\s*\)/u,
  // A scheme a client links; Discord's <a:name:1> emoji and <t:1:R> timestamps are not links.
  /<\s*(?:https?|ftps?|mailto|tel|sms|file|data|javascript)\s*:[^>]*>/iu,
  /\b[a-z][a-z0-9+.-]*:\/\/\S/iu,
  /\bwww\d{0,3}\.[\p{L}\p{N}-]/iu,
  /\b(?:[\p{L}\p{N}-]+\.)+\p{L}{2,}\/\S*/u,
  /\b(?:[\p{L}\p{N}-]+\.)+(?:com|net|org|gg|io|ly|xyz|ru|info|biz|app|dev|cc|uk|de|fr|cn|jp|ai|gl|eu|nl|ca|au|br|pl|ws|su|tk|ml|ga|cf|gq|pw|tv)\b(?![.\p{L}\p{N}-])/iu,
];

/** The first link in the text, if any. */
export function findLink(text: string): string | undefined {
  for (const pattern of LINK_PATTERNS) {
    const match = pattern.exec(text);
    if (match) return match[0];
  }
  return undefined;
}

/**
 * Platform markup that is not part of what the image should show, removed in this order:
 * - Discord mentions and references: `<@123>`, `<@!123>`, `<@&123>`, `<#123>`, custom emoji
 *   `<:name:123>` and `<a:name:123>`, timestamps `<t:123:R>`, command mentions `</name:123>`;
 * - Slack mentions and references: `<@U123>`, `<@U123|name>`, `<#C123|name>`, `<!here>`,
 *   `<!channel>`, `<!subteam^S1|@team>`, `<!date^…|fallback>`;
 * - links in angle brackets: `<https://…>` is removed, `<https://…|label>` keeps its label (the
 *   gate refuses links before this runs; stripMarkup alone keeps the old behaviour);
 * - markdown emphasis markers `**`, `__`, `~~`, backticks and `||spoiler||` bars (the text
 *   between them stays);
 * - Slack's HTML escapes `&lt;`, `&gt;`, `&amp;` are decoded last.
 */
const MENTION =
  /<(?:[@#][!&]?[A-Za-z0-9]+(?:\|[^<>]*)?|a?:[A-Za-z0-9_~]+:\d+|t:-?\d+(?::[A-Za-z])?|\/[^<>:\s]+(?: [^<>:]+)*:\d+|![^<>]*)>/g;
const ANGLE_LINK = /<(?:https?|mailto|ftp):[^<>|\s]*(?:\|([^<>]*))?>/gi;
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
    .replace(ANGLE_LINK, (_link, label: string | undefined) => ` ${label ?? ""} `)
    .replace(MARKERS, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * Cleans a subject as typed and returns what the image should show. Refuses, with a message
 * safe to show the person: control characters, links, a subject that is empty once mentions and
 * markup are removed, and one longer than maxLength characters (code points, so an emoji counts
 * once). No explicit-content check: gateSubject adds it.
 */
export function validateSubject(raw: string, maxLength: number): string {
  const cleaned = cleanText(raw);
  const control = CONTROL.exec(cleaned);
  if (control) {
    const code = (control[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
    throw new UserError(
      "SUBJECT_INVALID",
      `The subject contains a control character (U+${code}); use plain text.`,
    );
  }
  // Checked on the text after NFKC (and again after Slack's escapes are decoded), before markup
  // is stripped: a link is refused, never reduced to its label.
  if (findLink(cleaned) !== undefined || findLink(stripMarkup(cleaned)) !== undefined) {
    throw new UserError(
      "SUBJECT_INVALID",
      "The subject contains a link, and the bot never posts links: describe the image in words instead.",
    );
  }
  const subject = stripMarkup(cleaned);
  if (subject === "") {
    throw new UserError(
      "SUBJECT_INVALID",
      cleaned !== ""
        ? 'The subject is empty once mentions and formatting are removed: say what the image should show, for example "a lighthouse".'
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

export interface SubjectGateOptions {
  /** config.prompt.maxSubjectLength. */
  maxLength: number;
  filter: TextFilter;
}

/**
 * The one subject gate: validateSubject, then the explicit filter. Returns the cleaned subject
 * that prompts, records and replies use.
 *
 * @example
 * gateSubject("<@1> a red\u200b fox", { maxLength: 200, filter }); // "a red fox"
 * gateSubject("[free nitro](https://evil.example) a cat", …);      // throws: links
 * gateSubject("pоrn", …);                                           // throws: explicit (Cyrillic о)
 */
export function gateSubject(raw: string, options: SubjectGateOptions): string {
  const subject = validateSubject(raw, options.maxLength);
  if (options.filter.check(subject).blocked) {
    throw new UserError(
      "SUBJECT_EXPLICIT",
      "That subject can't be drawn here: it matches the explicit-content filter. Try a different subject.",
    );
  }
  return subject;
}
