/**
 * Reactions ↔ votes. The configuration lists four reactions per dimension (index 0 = score 1);
 * adapters map each reaction a person adds or removes through reactionToVote, and add
 * votingReactions under every posted image, in order: quality 1–4, then faithfulness 1–4.
 *
 * Discord reactions come as the unicode emoji ("1️⃣", with or without the U+FE0F variation
 * selector) or, for a server's custom emoji, as `name:id` (also accepted: `<:name:id>`,
 * `<a:name:id>`, `:name:`). A configured `name:id` matches by id; a configured bare `name` matches
 * a custom emoji of that name whatever its id. Slack reactions are names without colons; a
 * skin-tone suffix (`thumbsup::skin-tone-2`) is ignored.
 */
import type { Config } from "../config.js";
import { DIMENSIONS, type Dimension } from "../types.js";

export type ReactionPlatform = "discord" | "slack";

export interface ReactionVote {
  dimension: Dimension;
  /** Likert 1–4. */
  score: number;
}

type VotesConfig = Config["votes"];

/** The reactions that mean a score, in order quality 1–4 then faithfulness 1–4. */
export function votingReactions(platform: ReactionPlatform, config: VotesConfig): string[] {
  const table = platform === "discord" ? config.discordEmoji : config.slackEmoji;
  return DIMENSIONS.flatMap((dimension) =>
    table[dimension].map((emoji) => (platform === "slack" ? slackName(emoji) : emoji.trim())),
  );
}

/** The vote a reaction stands for, or undefined when it is not one of the voting reactions. */
export function reactionToVote(
  platform: ReactionPlatform,
  emoji: string,
  config: VotesConfig,
): ReactionVote | undefined {
  return scoreOfReaction(
    platform,
    emoji,
    platform === "slack" ? config.slackEmoji : config.discordEmoji,
  );
}

/** The reactions of one platform: four per dimension, index 0 = score 1. */
export type EmojiTable = VotesConfig["discordEmoji"];

/** reactionToVote for one platform's table. */
export function scoreOfReaction(
  platform: ReactionPlatform,
  emoji: string,
  table: EmojiTable,
): ReactionVote | undefined {
  if (platform === "slack") {
    const name = slackName(emoji);
    if (name === "") return undefined;
    for (const dimension of DIMENSIONS) {
      const index = table[dimension].findIndex((entry) => slackName(entry) === name);
      if (index !== -1) return { dimension, score: index + 1 };
    }
    return undefined;
  }
  const reaction = discordEmoji(emoji);
  if (reaction.text === "") return undefined;
  for (const dimension of DIMENSIONS) {
    const index = table[dimension].findIndex((entry) =>
      discordMatches(discordEmoji(entry), reaction),
    );
    if (index !== -1) return { dimension, score: index + 1 };
  }
  return undefined;
}

/** A Slack reaction name: colons and a skin-tone suffix removed, lowercase. */
export function slackName(emoji: string): string {
  return emoji
    .trim()
    .replace(/^:+|:+$/g, "")
    .replace(/::skin-tone-\d+$/i, "")
    .toLowerCase();
}

interface DiscordEmoji {
  /** Unicode emoji without variation selectors, or a custom emoji's name. */
  text: string;
  /** A custom emoji's snowflake id. */
  id?: string;
  custom: boolean;
}

const CUSTOM = /^<?a?:?([A-Za-z0-9_~-]+):(\d+)>?$/;
const NAMED = /^:([A-Za-z0-9_~-]+):$/;
/** U+FE0E (text) and U+FE0F (emoji presentation) variation selectors. */
const VARIATION_SELECTORS = /[\uFE0E\uFE0F]/g;

function discordEmoji(raw: string): DiscordEmoji {
  const value = raw.trim();
  const custom = CUSTOM.exec(value);
  if (custom) return { text: custom[1] as string, id: custom[2] as string, custom: true };
  const named = NAMED.exec(value);
  if (named) return { text: named[1] as string, custom: true };
  // A bare word is a custom emoji's name (unicode emoji contain no ASCII letters but keycaps' digits).
  if (/^[A-Za-z0-9_~-]{2,}$/.test(value)) return { text: value, custom: true };
  return { text: value.replace(VARIATION_SELECTORS, "").normalize("NFC"), custom: false };
}

function discordMatches(configured: DiscordEmoji, reaction: DiscordEmoji): boolean {
  if (configured.custom !== reaction.custom) return false;
  if (!configured.custom) return configured.text === reaction.text;
  if (configured.id !== undefined && reaction.id !== undefined) {
    return configured.id === reaction.id;
  }
  return configured.text === reaction.text;
}
