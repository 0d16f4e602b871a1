/**
 * Hostile subjects as a public Discord or Slack server types them, with what the one subject gate
 * must make of each. Shared by the gate's own tests and the imagine and prompt command tests.
 */
import { UserError } from "../../src/core/errors.js";

export type Outcome =
  /** Accepted; the cleaned subject that prompts, records and replies use. */
  | { accept: string }
  /** Refused by the explicit filter (SUBJECT_EXPLICIT), without echoing the word. */
  | { explicit: true }
  /** Refused as a link (SUBJECT_INVALID): no link is ever posted under the bot's name. */
  | { link: true }
  /** Refused for a control character (SUBJECT_INVALID), the code point named. */
  | { control: string };

export const HOSTILE_SUBJECTS: [label: string, subject: string, outcome: Outcome][] = [
  // Homoglyphs and styled letters
  ["Cyrillic о in porn", "p\u043ern", { explicit: true }],
  ["Cyrillic а in naked", "n\u0430ked woman", { explicit: true }],
  ["Cyrillic е, с, х in sex", "\u0455\u0435\u0445 on a beach", { explicit: true }],
  ["Greek ο and κ", "c\u03bfc\u03ba ring", { explicit: true }],
  ["fullwidth", "\uff50\uff4f\uff52\uff4e star", { explicit: true }],
  ["mathematical bold", "\u{1d427}\u{1d41a}\u{1d424}\u{1d41e}\u{1d41d} girl", { explicit: true }],
  ["accents", "n\u00fcd\u00e9 model", { explicit: true }],
  // Invisible, format and bidi characters splitting a word
  ["zero-width spaces", "p\u200bo\u200br\u200bn", { explicit: true }],
  ["zero-width joiner and non-joiner", "na\u200dk\u200ced woman", { explicit: true }],
  ["word joiner", "nu\u2060de", { explicit: true }],
  ["byte-order mark", "po\ufeffrn", { explicit: true }],
  ["soft hyphen", "hen\u00adtai", { explicit: true }],
  ["Arabic letter mark", "f\u061cuck", { explicit: true }],
  ["right-to-left override", "\u202eporn", { explicit: true }],
  ["left-to-right isolate", "por\u2066n\u2069 star", { explicit: true }],
  // Separators, spacing, leetspeak, repeats
  ["dots", "f.u.c.k lighthouse", { explicit: true }],
  ["hyphens", "n-a-k-e-d woman", { explicit: true }],
  ["underscores", "p_o_r_n", { explicit: true }],
  ["spaced letters", "a n a l", { explicit: true }],
  ["spaced phrase", "c a l l g i r l in a hotel", { explicit: true }],
  ["leetspeak", "n4k3d woman", { explicit: true }],
  ["leetspeak with symbols", "pr0$titute", { explicit: true }],
  ["repeated letters", "fuuuuck", { explicit: true }],
  ["repeats and homoglyphs", "p\u043e\u043e\u043e\u043ern", { explicit: true }],
  ["newline inside a phrase", "porn\nstar", { explicit: true }],
  ["markdown around a word", "**por**n", { explicit: true }],
  ["mention before a word", "<@123456789012345678> topless woman", { explicit: true }],
  ["plain vocabulary", "naked woman", { explicit: true }],
  ["sex work", "prostitute on a street corner", { explicit: true }],
  ["adult site", "onlyfans model", { explicit: true }],
  // Links, masked or bare, in any spelling
  ["masked link", "[free nitro](https://evil.example) a cat", { link: true }],
  ["masked link without a scheme", "[a cat](evil.example)", { link: true }],
  ["bare https URL", "a cat https://evil.example/nitro", { link: true }],
  ["bare http URL", "http://evil.example", { link: true }],
  ["other scheme", "a cat steam://run/1", { link: true }],
  ["www host", "a cat www.evil.example", { link: true }],
  ["invite link", "discord.gg/abcdef a cat", { link: true }],
  ["host with a path", "evil.example/free a cat", { link: true }],
  ["host on a common domain", "a cat from example.com", { link: true }],
  ["angle link", "a cat <https://evil.example>", { link: true }],
  ["Slack link with label", "a cat <http://example.com|example.com>", { link: true }],
  [
    "fullwidth scheme",
    "\uff48\uff54\uff54\uff50\uff53\uff1a\uff0f\uff0fevil.example",
    { link: true },
  ],
  ["zero-width inside a scheme", "h\u200bttps://evil.example", { link: true }],
  ["escaped angle link", "a cat &lt;https://evil.example&gt;", { link: true }],
  // Control characters
  ["NUL", "a\u0000cat", { control: "U+0000" }],
  ["escape sequence", "a cat \u001b[31m", { control: "U+001B" }],
  ["bell", "a\u0007bell", { control: "U+0007" }],
  ["C1 control", "a cat\u0090", { control: "U+0090" }],
  // Accepted, cleaned the same way on every platform
  ["plain subject", "a lighthouse", { accept: "a lighthouse" }],
  ["newline", "a red fox\nin snow", { accept: "a red fox in snow" }],
  ["CRLF and tabs", "a red fox\r\n\tin snow", { accept: "a red fox in snow" }],
  ["line separator", "a red fox\u2028in snow", { accept: "a red fox in snow" }],
  ["zero-width space", "a red\u200b fox", { accept: "a red fox" }],
  ["bidi override", "a red \u202efox\u202c", { accept: "a red fox" }],
  ["byte-order mark", "\ufeffa red fox", { accept: "a red fox" }],
  ["fullwidth words", "\uff41 \uff52\uff45\uff44 \uff46\uff4f\uff58", { accept: "a red fox" }],
  ["Discord mention", "<@123456789012345678> a red fox <:fox:42>", { accept: "a red fox" }],
  ["Slack mention", "<@U024BE7LH|bob> a red fox <!here>", { accept: "a red fox" }],
  [
    "Discord animated emoji, timestamp and command",
    "</imagine:123> <a:wave:42> a red fox <t:1700000000:R>",
    { accept: "a red fox" },
  ],
  ["Slack mailto link", "a red fox <mailto:bob@evil.example|bob>", { link: true }],
  [
    "emoji ZWJ sequence kept",
    "\u{1f469}\u200d\u{1f4bb} at a desk",
    { accept: "\u{1f469}\u200d\u{1f4bb} at a desk" },
  ],
  [
    "Cyrillic words",
    "\u041c\u043e\u0441\u043a\u0432\u0430 at night",
    { accept: "\u041c\u043e\u0441\u043a\u0432\u0430 at night" },
  ],
  [
    "abbreviation with dots",
    "e.g. a cat in St. Louis, 3.5 inch",
    { accept: "e.g. a cat in St. Louis, 3.5 inch" },
  ],
  [
    "innocent look-alikes",
    "a peacock in Scunthorpe with a cocktail",
    { accept: "a peacock in Scunthorpe with a cocktail" },
  ],
  ["nude as a colour", "nude lipstick on a table", { accept: "nude lipstick on a table" }],
  ["naked eye", "the moon seen with the naked eye", { accept: "the moon seen with the naked eye" }],
  ["cock pheasant", "a cock pheasant in a field", { accept: "a cock pheasant in a field" }],
];

/** What the gate made of a subject, in the table's terms. */
export function outcomeOf(run: () => string): Outcome {
  try {
    return { accept: run() };
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    if (error.code === "SUBJECT_EXPLICIT") return { explicit: true };
    if (/link/.test(error.message)) return { link: true };
    const control = /control character \((U\+[0-9A-F]{4})\)/.exec(error.message);
    if (control) return { control: control[1] as string };
    throw error;
  }
}
