/**
 * Text normalisation and tokenisation for the explicit-text filter. One pass over the text,
 * no regular expression per caption: ASCII text (most captions) is only lowercased; other text
 * is normalised code point by code point — invisible characters removed, NFKC, then the
 * Unicode TR39 confusables prototype where it is ASCII (Cyrillic "о" → "o", Greek "ν" → "v"),
 * else NFKD without combining marks, lowercased — keeping a map back to the original offsets.
 */
import { createRequire } from "node:module";

/** Where each of its UTF-16 units came from in the original. */
export interface NormalisedText {
  text: string;
  /** Original offset of the code point that produced each unit; null when it is the identity. */
  start: Int32Array | null;
  /** Original offset just after that code point; null when it is the identity. */
  end: Int32Array | null;
}

/**
 * Unicode confusables.txt (TR39), one code point → its prototype, as shipped by the
 * `unhomoglyph` package (nodeca, MIT; Unicode 13.0 data). Only prototypes that are ASCII are
 * used: the skeleton of ASCII itself ("m" → "rn", "l" → "I") would break matching.
 */
const CONFUSABLES = createRequire(import.meta.url)("unhomoglyph/data.json") as Record<
  string,
  string
>;

/**
 * Characters that draw nothing and can split or disguise a word: zero-width spaces and
 * joiners, bidi marks, embeddings, overrides and isolates, the word joiner, the BOM, the Arabic
 * letter mark, soft hyphen, Hangul fillers, tags (Unicode's Default_Ignorable_Code_Point, minus
 * the variation selectors, which only pick an emoji's presentation).
 */
export const INVISIBLE = /(?![\uFE00-\uFE0F\u{E0100}-\u{E01EF}])\p{Default_Ignorable_Code_Point}/u;

const charCache = new Map<string, string>();
const MARKS = /\p{M}/gu;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/**
 * Latin look-alikes whose TR39 prototype is not ASCII: Greek kappa and Cyrillic ka have the
 * prototype "ĸ" (kra), Greek chi none, the lunate sigma "ϲ" turns into "ς" under NFKC.
 */
const LATIN_LOOKALIKES: Record<string, string> = { ĸ: "k", χ: "x", ς: "c", ϲ: "c" };

/** The ASCII prototype of one code point, if it has one. */
function asciiPrototype(c: string): string | undefined {
  const prototype = CONFUSABLES[c] ?? CONFUSABLES[c.toLowerCase()];
  if (prototype !== undefined && PRINTABLE_ASCII.test(prototype)) return prototype.toLowerCase();
  return LATIN_LOOKALIKES[prototype ?? c] ?? LATIN_LOOKALIKES[c.toLowerCase()];
}

/** One non-ASCII code point as the filter matches it ("" for an invisible one). */
export function normaliseChar(ch: string): string {
  let out = charCache.get(ch);
  if (out !== undefined) return out;
  out = "";
  if (!INVISIBLE.test(ch)) {
    // The character's own prototype first: NFKC can turn a look-alike into a letter that has none.
    out = asciiPrototype(ch) ?? "";
    if (out === "") {
      for (const c of ch.normalize("NFKC")) {
        if (c.charCodeAt(0) < 128) out += c.toLowerCase();
        else {
          const bare = c.normalize("NFKD").toLowerCase().normalize("NFKD").replace(MARKS, "");
          out += asciiPrototype(c) ?? asciiPrototype(bare) ?? bare;
        }
      }
    }
  }
  if (charCache.size < 65_536) charCache.set(ch, out);
  return out;
}

export function normaliseText(text: string): NormalisedText {
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) return { text: text.toLowerCase(), start: null, end: null };
  let out = "";
  const start: number[] = [];
  const end: number[] = [];
  let i = 0;
  while (i < text.length) {
    const code = text.codePointAt(i) as number;
    const width = code > 0xffff ? 2 : 1;
    let piece: string;
    if (code < 128) {
      piece = code >= 65 && code <= 90 ? String.fromCharCode(code + 32) : (text[i] as string);
    } else {
      piece = normaliseChar(text.slice(i, i + width));
    }
    for (let k = 0; k < piece.length; k++) {
      start.push(i);
      end.push(i + width);
    }
    out += piece;
    i += width;
  }
  return { text: out, start: Int32Array.from(start), end: Int32Array.from(end) };
}

// Character classes of the normalised text.
export const OTHER = 0;
export const LETTER = 1;
export const DIGIT = 2;
/** @ $ ! + : leetspeak inside a word, punctuation at its edges. */
export const SYMBOL = 3;
export const SPACE = 4;

const ASCII_CLASS = new Uint8Array(128);
for (let c = 97; c <= 122; c++) ASCII_CLASS[c] = LETTER;
for (let c = 48; c <= 57; c++) ASCII_CLASS[c] = DIGIT;
for (const c of "@$!+") ASCII_CLASS[c.charCodeAt(0)] = SYMBOL;
for (const c of " \t\n\r\f\v") ASCII_CLASS[c.charCodeAt(0)] = SPACE;

const WORD = /^[\p{L}\p{N}]$/u;
const WHITE = /^\s$/u;
const classCache = new Map<number, number>();

function classOf(code: number): number {
  if (code < 128) return ASCII_CLASS[code] as number;
  let cls = classCache.get(code);
  if (cls === undefined) {
    const ch = String.fromCodePoint(code);
    cls = WORD.test(ch) ? LETTER : WHITE.test(ch) ? SPACE : OTHER;
    classCache.set(code, cls);
  }
  return cls;
}

/**
 * A word token: a maximal run of letters, digits and the leet symbols @ $ ! +.
 * `text` is the whole run; `core` drops leading and trailing symbols ("shit!" → "shit").
 */
export interface Token {
  /** The whole run, symbols included. */
  text: string;
  start: number;
  end: number;
  /** The run without leading and trailing symbols; "" when it is only symbols. */
  core: string;
  coreStart: number;
  coreEnd: number;
  letters: number;
  digits: number;
  symbols: number;
  /** Some character repeats three or more times in a row ("fuuuck"). */
  tripleRun: boolean;
  /** The filter's readings of the token (leet decoded…), filled in when first needed. */
  forms?: string[];
}

/** Splits normalised text into word tokens with their positions in it. */
export function tokenise(text: string): Token[] {
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    let code = text.charCodeAt(i);
    let cls = code < 128 ? (ASCII_CLASS[code] as number) : classOf(text.codePointAt(i) as number);
    if (cls === OTHER || cls === SPACE) {
      i += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
      continue;
    }
    const start = i;
    let letters = 0;
    let digits = 0;
    let symbols = 0;
    let tripleRun = false;
    let previous = -1;
    let runLength = 0;
    let coreStart = -1;
    let coreEnd = -1;
    while (i < n) {
      code = text.charCodeAt(i);
      cls = code < 128 ? (ASCII_CLASS[code] as number) : classOf(text.codePointAt(i) as number);
      if (cls === OTHER || cls === SPACE) break;
      const width = code >= 0xd800 && code <= 0xdbff ? 2 : 1;
      runLength = code === previous ? runLength + 1 : 1;
      if (runLength === 3) tripleRun = true;
      previous = code;
      if (cls === SYMBOL) {
        symbols++;
      } else {
        if (cls === DIGIT) digits++;
        else letters++;
        if (coreStart < 0) coreStart = i;
        coreEnd = i + width;
      }
      i += width;
    }
    const whole = text.slice(start, i);
    if (coreStart < 0) {
      tokens.push({
        text: whole,
        start,
        end: i,
        core: "",
        coreStart: start,
        coreEnd: start,
        letters,
        digits,
        symbols,
        tripleRun,
        forms: undefined,
      });
    } else {
      tokens.push({
        text: whole,
        start,
        end: i,
        core: coreStart === start && coreEnd === i ? whole : text.slice(coreStart, coreEnd),
        coreStart,
        coreEnd,
        letters,
        digits,
        symbols,
        tripleRun,
        forms: undefined,
      });
    }
  }
  return tokens;
}

const LEET: Record<string, string> = {
  "0": "o",
  "1": "i",
  "3": "e",
  "4": "a",
  "5": "s",
  "7": "t",
  "@": "a",
  $: "s",
  "!": "i",
  "+": "t",
};

/**
 * Leetspeak decodings of a word: digits and symbols as letters. "1" is read both as "i" and as
 * "l", so a word with a 1 has two decodings. Returns [] when nothing is decoded.
 */
export function decodeLeet(word: string): string[] {
  let out = "";
  let changed = false;
  let hasOne = false;
  for (let i = 0; i < word.length; i++) {
    const ch = word[i] as string;
    const mapped = LEET[ch];
    if (mapped === undefined) {
      out += ch;
    } else {
      changed = true;
      if (ch === "1") hasOne = true;
      out += mapped;
    }
  }
  if (!changed) return [];
  if (!hasOne) return [out];
  let withL = "";
  for (let i = 0; i < word.length; i++) {
    const ch = word[i] as string;
    withL += ch === "1" ? "l" : (LEET[ch] ?? ch);
  }
  return [out, withL];
}

/** True when some character repeats three or more times in a row ("fuuuck"). */
export function hasTripleRun(word: string): boolean {
  for (let i = 2; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if (c === word.charCodeAt(i - 1) && c === word.charCodeAt(i - 2)) return true;
  }
  return false;
}

/** Shortens runs of three or more equal characters to `keep` (1 or 2); shorter runs stay. */
export function collapseRuns(word: string, keep: number): string {
  let out = "";
  let i = 0;
  while (i < word.length) {
    const ch = word[i] as string;
    let j = i + 1;
    while (j < word.length && word[j] === ch) j++;
    const run = j - i;
    out += run >= 3 ? ch.repeat(keep) : ch.repeat(run);
    i = j;
  }
  return out;
}
