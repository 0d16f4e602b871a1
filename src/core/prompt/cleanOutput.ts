/**
 * The rules that keep a model's continuation clean, whatever the model (see README, "Clean
 * output"). They are properties of the engine, not of a model's training:
 *
 * - A new word: the first sampled token must begin with whitespace or punctuation, or be the
 *   end tag, so "a dog" never becomes "a dogmill". Subjects ending in a script written without
 *   spaces (Chinese, Japanese, Thai…) are exempt.
 * - No tag text: a tag's punctuation pairs ("<|", "|>") are never formed (tokens containing one
 *   are masked at every step, and after "<" no token may start with "|"); a continuation that
 *   still spells part of a tag ("…oftext", "startof…", "text|") is cut before the word that
 *   holds the fragment and the row stops, not closed. `findTagFragment` is the one detector, shared with the
 *   prompt-quality harness (src/core/eval).
 * - Independent rows: prompt i of a request draws from its own random stream, derived from
 *   (seed, i), so it does not depend on how many prompts were asked for.
 */
import { type RandomSource, seededRandom } from "../random.js";
import { decodeTokens, END_OF_TEXT, GPT2_VOCAB_SIZE } from "./tokenizer.js";

/** Letters of scripts written without spaces between words. */
const NO_SPACE_SCRIPT =
  /[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}\p{scx=Tibetan}]/u;
const LETTER = /\p{L}/u;
/** What a continuation may start with: whitespace or punctuation (not symbols or letters). */
const WORD_BOUNDARY_START = /^[\s\p{P}]/u;
/** Substrings of a tag's word at least this long count as a fragment ("oftext", "startof"). */
const MIN_WORD_FRAGMENT = 6;
/** Pieces of a tag that mix its letters and punctuation count from this length ("ext|", "<|st"). */
const MIN_MIXED_FRAGMENT = 4;

/**
 * Whether a continuation of `subject` must start a new word: true unless the subject's last
 * letter belongs to a script written without spaces.
 */
export function needsWordBoundary(subject: string): boolean {
  const letters = [...subject].filter((char) => LETTER.test(char));
  const last = letters[letters.length - 1];
  return last === undefined || !NO_SPACE_SCRIPT.test(last);
}

/** Whether `text` starts a new word after a subject (whitespace or punctuation first). */
export function startsNewWord(text: string): boolean {
  return WORD_BOUNDARY_START.test(text);
}

/** Pairs of adjacent non-alphanumeric characters in a tag: "<|" and "|>" for "<|endoftext|>". */
function punctuationPairs(tag: string): string[] {
  const pairs: string[] = [];
  const chars = [...tag];
  for (let i = 0; i + 1 < chars.length; i++) {
    const pair = `${chars[i]}${chars[i + 1]}`;
    if (!/[\p{L}\p{N}]/u.test(pair) && !/\s/u.test(pair) && !pairs.includes(pair)) pairs.push(pair);
  }
  return pairs;
}

/** A tag's alphanumeric runs: "startoftext" for "<|startoftext|>". */
function tagWords(tag: string): string[] {
  return tag.match(/[\p{L}\p{N}]+/gu) ?? [];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The tag texts whose fragments must never appear: the model's tags and GPT-2's end of text. */
export function tagTexts(tags: { start: string; end: string } | null): string[] {
  const texts = [END_OF_TEXT];
  if (tags) for (const tag of [tags.start, tags.end]) if (!texts.includes(tag)) texts.push(tag);
  return texts;
}

const fragmentPatterns = new Map<string, RegExp>();

/** One case-insensitive pattern for every fragment of the given tags, longest first. */
function fragmentPattern(tags: readonly string[]): RegExp {
  const key = tags.join("\u0000");
  const cached = fragmentPatterns.get(key);
  if (cached) return cached;
  const pieces = new Set<string>();
  for (const tag of tags) {
    for (const pair of punctuationPairs(tag)) pieces.add(pair);
    const chars = [...tag];
    for (let start = 0; start < chars.length; start++) {
      for (let end = start + MIN_MIXED_FRAGMENT; end <= chars.length; end++) {
        const piece = chars.slice(start, end).join("");
        if (/[\p{L}\p{N}]/u.test(piece) && /[^\p{L}\p{N}\s]/u.test(piece)) pieces.add(piece);
      }
    }
    for (const word of tagWords(tag)) {
      for (let length = word.length; length >= MIN_WORD_FRAGMENT; length--) {
        for (let start = 0; start + length <= word.length; start++)
          pieces.add(word.slice(start, start + length));
      }
    }
  }
  const alternatives = [...pieces].sort((a, b) => b.length - a.length).map(escapeRegExp);
  // A pattern that never matches when the tags have nothing to detect.
  const pattern = new RegExp(alternatives.length > 0 ? alternatives.join("|") : "(?!)", "giu");
  fragmentPatterns.set(key, pattern);
  return pattern;
}

/**
 * Index where the first fragment of a tag's text begins in `text`, among fragments that end
 * after `from` (so a subject before `from` is never blamed), or -1. Fragments are a tag's
 * punctuation pairs ("<|", "|>"), any 4+ character piece that mixes its letters and punctuation
 * ("ext|", "<|st") and any 6+ character piece of its word ("oftext", "startof", "endoftext"),
 * case-insensitive.
 *
 * @example
 * findTagFragment("a dog trendingoftext|>", ["<|startoftext|>"]); // 14
 */
export function findTagFragment(text: string, tags: readonly string[], from = 0): number {
  const pattern = fragmentPattern(tags);
  pattern.lastIndex = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index + match[0].length > from) return Math.max(match.index, 0);
  }
  return -1;
}

/**
 * Where to cut `continuation` (written after `subject`) so no tag fragment remains: before the
 * word that holds the first fragment, never into the subject. Null when there is none.
 *
 * @example
 * tagFragmentCut("a cat", " in a medieval wearingregtext|", TAGS); // 14 → " in a medieval"
 */
export function tagFragmentCut(
  subject: string,
  continuation: string,
  tags: readonly string[],
): number | null {
  const joined = subject + continuation;
  const at = findTagFragment(joined, tags, subject.length);
  if (at < 0) return null;
  const wordStart = joined.slice(0, at).search(/\S*$/u);
  return Math.max(wordStart - subject.length, 0);
}

/** Token-level masks over GPT-2's vocabulary (1 = allowed), computed once per set of tags. */
export interface TokenMasks {
  /** Every step: tokens that contain a tag's punctuation pair are never allowed. */
  always: Uint8Array;
  /** The first step when a new word is needed: `always` and a word-boundary start. */
  firstWord: Uint8Array;
  /**
   * After text ending in a pair's first character: `always` minus tokens that start with its
   * second character (so "<" + "|start" or "|" + ">" never forms a pair across tokens).
   */
  after: Map<string, Uint8Array>;
}

let vocabularyTexts: string[] | undefined;

/** Each GPT-2 token's own text (partial UTF-8 bytes decode to U+FFFD). */
function vocabulary(): string[] {
  if (!vocabularyTexts) {
    vocabularyTexts = Array.from({ length: GPT2_VOCAB_SIZE }, (_, id) => decodeTokens([id]));
  }
  return vocabularyTexts;
}

const maskCache = new Map<string, TokenMasks>();

/**
 * The masks for a model's tags. `endIds` (the end tag's tokens) stay allowed at the first
 * step, so a model may close the caption at once.
 */
export function tokenMasks(tags: readonly string[], endIds: readonly number[]): TokenMasks {
  const key = `${tags.join("\u0000")}\u0001${endIds.join(",")}`;
  const cached = maskCache.get(key);
  if (cached) return cached;
  const texts = vocabulary();
  const pairs = [...new Set(tags.flatMap(punctuationPairs))];
  const always = new Uint8Array(GPT2_VOCAB_SIZE);
  const firstWord = new Uint8Array(GPT2_VOCAB_SIZE);
  // After a pair's first character: tokens starting with its second are masked.
  const closers = new Map<string, string[]>();
  for (const pair of pairs) {
    const [opening, closing] = [...pair] as [string, string];
    closers.set(opening, [...(closers.get(opening) ?? []), closing]);
  }
  const after = new Map<string, Uint8Array>();
  for (const opening of closers.keys()) after.set(opening, new Uint8Array(GPT2_VOCAB_SIZE));
  // One pass over the vocabulary: this runs when the first generator of a process is made.
  for (let id = 0; id < texts.length; id++) {
    const text = texts[id] as string;
    const allowed = text === END_OF_TEXT || !pairs.some((pair) => text.includes(pair)) ? 1 : 0;
    always[id] = allowed;
    firstWord[id] = allowed && startsNewWord(text) ? 1 : 0;
    for (const [opening, closing] of closers) {
      (after.get(opening) as Uint8Array)[id] =
        allowed && !closing.some((c) => text.startsWith(c)) ? 1 : 0;
    }
  }
  const firstEnd = endIds[0];
  if (firstEnd !== undefined) firstWord[firstEnd] = 1;
  const masks = { always, firstWord, after };
  maskCache.set(key, masks);
  return masks;
}

/** 32-bit finaliser of MurmurHash3: spreads nearby inputs over unrelated outputs. */
function mix32(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The random stream of prompt `index` under `seed`: a function of both alone, so prompt i is
 * the same whether 1 or 16 prompts are asked for.
 */
export function rowRandom(seed: number, index: number): RandomSource {
  const high = Math.floor(seed / 2 ** 32);
  return seededRandom(
    mix32(mix32(seed >>> 0) ^ mix32(high + 0x9e3779b9) ^ Math.imul(index + 1, 0x27d4eb2d)),
  );
}
