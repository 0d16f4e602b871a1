/**
 * Text normalisation and tokenisation for the explicit-text filter. One pass over the text,
 * no regular expression per caption: ASCII text (most captions) is only lowercased; other text
 * is normalised code point by code point — invisible characters removed, NFKC, then the
 * Unicode TR39 confusables prototype where it is ASCII (Cyrillic "о" → "o", Greek "ν" → "v"),
 * else NFKD without combining marks, lowercased — keeping a map back to the original offsets.
 */
import { createRequire } from "node:module";

/** The text as matched, and where each of its UTF-16 units came from in the original. */
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
 * letter mark, soft hyphen, Hangul fillers, tags — Unicode's Default_Ignorable_Code_Point, which
 * holds every invisible format and bidi control, minus the variation selectors (they only pick
 * an emoji's presentation).
 */
export const INVISIBLE = /(?![\uFE00-\uFE0F\u{E0100}-\u{E01EF}])\p{Default_Ignorable_Code_Point}/u;

const MARKS = /\p{M}/gu;
const MARK_CHAR = /^\p{M}$/u;
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

/** What a non-ASCII code point is for the script check. */
const OTHER_CHAR = 0;
/** A letter that reads as ASCII letters without confusables: é, ｆ, 𝐟. */
const LATIN_CHAR = 1;
/** A letter of another script that looks like a Latin one: Cyrillic "о", Greek "ν". */
const LOOKALIKE_CHAR = 2;
/** A letter of another script that does not: Cyrillic "ж", Greek "λ", CJK… */
const FOREIGN_CHAR = 3;

interface CharInfo {
  /** With TR39 prototypes: Cyrillic "о" → "o". */
  skeleton: string;
  /** Without: NFKC, then NFKD without marks, lowercased. */
  plain: string;
  kind: number;
  /** A combining mark: part of the word it follows. */
  mark: boolean;
}

const infoCache = new Map<number, CharInfo>();
const LETTER_CHAR = /^\p{L}$/u;
const ASCII_LETTERS = /^[a-z]+$/;

function plainForm(c: string): string {
  return c.normalize("NFKD").toLowerCase().normalize("NFKD").replace(MARKS, "");
}

/** One non-ASCII code point, both ways ("" for an invisible one). */
function charInfo(code: number): CharInfo {
  let info = infoCache.get(code);
  if (info !== undefined) return info;
  const ch = String.fromCodePoint(code);
  if (INVISIBLE.test(ch)) {
    info = { skeleton: "", plain: "", kind: OTHER_CHAR, mark: false };
  } else {
    let plain = "";
    for (const c of ch.normalize("NFKC")) {
      plain += c.charCodeAt(0) < 128 ? c.toLowerCase() : plainForm(c);
    }
    // The character's own prototype first: NFKC can turn a look-alike into a letter that has none.
    let skeleton = asciiPrototype(ch) ?? "";
    if (skeleton === "") {
      for (const c of ch.normalize("NFKC")) {
        if (c.charCodeAt(0) < 128) skeleton += c.toLowerCase();
        else {
          const bare = plainForm(c);
          skeleton += asciiPrototype(c) ?? asciiPrototype(bare) ?? bare;
        }
      }
    }
    const kind = ASCII_LETTERS.test(plain)
      ? LATIN_CHAR
      : !LETTER_CHAR.test(ch)
        ? OTHER_CHAR
        : ASCII_LETTERS.test(skeleton)
          ? LOOKALIKE_CHAR
          : FOREIGN_CHAR;
    info = { skeleton, plain, kind, mark: MARK_CHAR.test(ch) };
  }
  if (infoCache.size < 65_536) infoCache.set(code, info);
  return info;
}

/** One non-ASCII code point as the filter matches it in Latin text ("" for an invisible one). */
export function normaliseChar(ch: string): string {
  return charInfo(ch.codePointAt(0) as number).skeleton;
}

function isAsciiLetter(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
}

/**
 * Lowercased, invisible characters removed, NFKC, and look-alike letters read as Latin
 * (TR39 prototypes). In text written in another script (letters with no Latin look-alike, such
 * as Cyrillic "ж", outnumber the Latin ones) a word entirely in that script keeps its letters, so
 * "свежий сок" is not read as "... cok"; a word that mixes scripts ("pоrn" with a Cyrillic о) is
 * read as Latin whatever the text around it, and so is text made only of look-alikes ("ѕех").
 */
export function normaliseText(text: string): NormalisedText {
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) return { text: text.toLowerCase(), start: null, end: null };
  // Which script dominates: Latin letters (ASCII or not) against letters of other scripts.
  let latin = 0;
  let lookalike = 0;
  let foreign = 0;
  for (let i = 0; i < text.length; ) {
    const code = text.codePointAt(i) as number;
    const width = code > 0xffff ? 2 : 1;
    if (code < 128) {
      if (isAsciiLetter(code)) latin++;
    } else {
      const kind = charInfo(code).kind;
      if (kind === LATIN_CHAR) latin++;
      else if (kind === LOOKALIKE_CHAR) lookalike++;
      else if (kind === FOREIGN_CHAR) foreign++;
    }
    i += width;
  }
  const latinText = foreign === 0 || latin >= lookalike + foreign;
  let out = "";
  const start: number[] = [];
  const end: number[] = [];
  const emit = (piece: string, from: number, to: number) => {
    for (let k = 0; k < piece.length; k++) {
      start.push(from);
      end.push(to);
    }
    out += piece;
  };
  let i = 0;
  while (i < text.length) {
    const code = text.codePointAt(i) as number;
    if (code < 128 && !isAsciiLetter(code)) {
      emit(text[i] as string, i, i + 1);
      i++;
      continue;
    }
    // A word: letters, digits, marks and invisible characters, ASCII or not.
    const wordStart = i;
    let hasLatin = false;
    let hasForeign = false;
    while (i < text.length) {
      const c = text.codePointAt(i) as number;
      const w = c > 0xffff ? 2 : 1;
      if (c < 128) {
        if (isAsciiLetter(c)) hasLatin = true;
        else if (!(c >= 48 && c <= 57)) break;
      } else {
        const info = charInfo(c);
        if (info.kind === LATIN_CHAR) hasLatin = true;
        else if (info.kind === LOOKALIKE_CHAR || info.kind === FOREIGN_CHAR) hasForeign = true;
        else if (info.skeleton !== "" && !info.mark) {
          if (i === wordStart) i += w; // a lone symbol or space: a word of its own
          break;
        }
      }
      i += w;
    }
    const skeleton = latinText || (hasLatin && hasForeign);
    for (let j = wordStart; j < i; ) {
      const c = text.codePointAt(j) as number;
      const w = c > 0xffff ? 2 : 1;
      if (c < 128) {
        emit(c >= 65 && c <= 90 ? String.fromCharCode(c + 32) : (text[j] as string), j, j + 1);
      } else {
        const info = charInfo(c);
        emit(skeleton ? info.skeleton : info.plain, j, j + w);
      }
      j += w;
    }
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
