/**
 * The explicit-text filter: whole-word and whole-phrase matching of the blocklist over
 * normalised, tokenised text, with de-obfuscation (separators, spaced letters, repeated letters,
 * leetspeak) and generated inflections. Matching rules and trade-offs: README.md.
 */
import {
  type BlocklistSource,
  DROPPED,
  EXCEPTION_PHRASES,
  INNOCENT_FORMS,
  type RawEntry,
  shippedEntries,
} from "./blocklist.js";
import {
  collapseRuns,
  decodeLeet,
  hasTripleRun,
  type NormalisedText,
  normaliseText,
  type Token,
  tokenise,
} from "./text.js";

export interface SafetyMatch {
  /** The blocklist entry that matched (normalised: lowercase, single spaces). */
  entry: string;
  /** The text as it appeared. */
  found: string;
  /** UTF-16 offset of `found` in the checked text. */
  index: number;
}

export interface TextFilter {
  check(text: string): { blocked: boolean; matches: SafetyMatch[] };
  /** Number of unique entries (words and phrases) blocked; generated inflections not counted. */
  readonly size: number;
}

export interface FilterOptions {
  /** Extra words or phrases to block, matched like the shipped list. */
  extraBlockedWords?: string[];
  /** Shipped entries to stop blocking (compared after normalisation). */
  allowedWords?: string[];
}

/** How one entry is matched, built at load time. */
interface CompiledEntry {
  /** Display form: the entry normalised. */
  entry: string;
  /** The canonical key: one word, or words joined by single spaces. */
  key: string;
  words: string[];
  literal: boolean;
  source: BlocklistSource;
}

interface Phrase {
  words: string[];
  entry: string;
}

interface Exception {
  words: string[];
  /** Position of the matched entry's word in `words`. */
  offset: number;
}

/** Lowercase, NFKC without diacritics, trimmed, inner whitespace collapsed. */
export function normaliseEntry(raw: string): string {
  return normaliseText(raw.trim()).text.replace(/\s+/g, " ").trim();
}

/** Canonical word forms of one token of an entry: leet decoded when it has digits or symbols. */
function entryWordForms(token: Token): string[] {
  if (token.digits === 0 && token.symbols === 0) return [token.text];
  if (token.letters === 0) return [token.text];
  return decodeLeet(token.text);
}

function compileEntry(raw: string, source: BlocklistSource): CompiledEntry[] {
  const normalised = normaliseEntry(raw);
  if (!normalised) return [];
  const tokens = tokenise(normalised);
  if (tokens.length === 0 || normalised.includes("&")) {
    return [{ entry: normalised, key: normalised, words: [], literal: true, source }];
  }
  const forms = tokens.map(entryWordForms);
  const spaced = /\s/.test(normalised);
  const allSingle = tokens.length > 1 && tokens.every((t) => t.text.length === 1);
  // Obfuscated spellings in the source lists ("sh!t", "a_s_s", "f u c k") report the plain word.
  const obfuscated = allSingle || tokens.some((t) => t.digits > 0 || t.symbols > 0);
  const out: CompiledEntry[] = [];
  // One variant per leet reading of the tokens (almost always exactly one).
  const variants: string[][] = [[]];
  for (const options of forms) {
    const next: string[][] = [];
    for (const prefix of variants) for (const option of options) next.push([...prefix, option]);
    variants.splice(0, variants.length, ...next);
  }
  for (const words of variants) {
    const entry = obfuscated ? words.join(allSingle || !spaced ? "" : " ") : normalised;
    if (words.length === 1 || allSingle || !spaced) {
      // "a_s_s", "f u c k", "g-spot": one word; multi-letter hyphenated entries also as a phrase.
      const joined = words.join("");
      out.push({ entry, key: joined, words: [joined], literal: false, source });
      if (words.length > 1 && !allSingle) {
        out.push({ entry, key: words.join(" "), words, literal: false, source });
      }
    } else {
      out.push({ entry, key: words.join(" "), words, literal: false, source });
    }
  }
  return out;
}

const VOWELS = new Set(["a", "e", "i", "o", "u"]);

/** Simple inflections of one word: s, es, ies, ing, ed, er, ers, with e-drop and doubling. */
export function inflections(word: string): string[] {
  if (word.length < 3 || !/^[a-z]+$/.test(word)) return [];
  // Already inflected: "fucking", "raped"; "fucker" only takes a plural; "ass" is not a plural.
  if (/(ing|ed)$/.test(word) || /[^s]s$/.test(word)) return [];
  if (word.endsWith("er")) return [`${word}s`];
  const last = word[word.length - 1] as string;
  const before = word[word.length - 2] as string;
  const out = [`${word}s`];
  if (/(s|x|z|ch|sh)$/.test(word)) out.push(`${word}es`);
  if (last === "y" && !VOWELS.has(before)) {
    const stem = word.slice(0, -1);
    out.push(`${stem}ies`, `${stem}ied`, `${stem}ier`, `${word}ing`);
    return out;
  }
  if (last === "e") {
    const stem = word.slice(0, -1);
    out.push(`${stem}ing`, `${word}d`, `${word}r`, `${word}rs`);
    return out;
  }
  out.push(`${word}ing`, `${word}ed`, `${word}er`, `${word}ers`);
  const third = word[word.length - 3] as string;
  if (!VOWELS.has(last) && !"wxy".includes(last) && VOWELS.has(before) && !VOWELS.has(third)) {
    out.push(`${word}${last}ing`, `${word}${last}ed`, `${word}${last}er`, `${word}${last}ers`);
  }
  return out;
}

/** The compiled list: shipped entries, minus dropped and allowed, plus extras. */
export function compileBlocklist(options: FilterOptions = {}): CompiledEntry[] {
  const raw: RawEntry[] = shippedEntries();
  const allowed = new Set<string>();
  for (const word of options.allowedWords ?? []) {
    for (const compiled of compileEntry(word, "config")) {
      allowed.add(compiled.key);
      allowed.add(compiled.entry);
    }
  }
  const seen = new Set<string>();
  const out: CompiledEntry[] = [];
  const add = (compiled: CompiledEntry, userAdded: boolean) => {
    if (seen.has(compiled.key)) return;
    if (!userAdded && DROPPED.has(compiled.key)) return;
    if (allowed.has(compiled.key) || allowed.has(compiled.entry)) return;
    seen.add(compiled.key);
    out.push(compiled);
  };
  for (const entry of raw) {
    for (const compiled of compileEntry(entry.text, entry.source)) add(compiled, false);
  }
  for (const word of options.extraBlockedWords ?? []) {
    for (const compiled of compileEntry(word, "config")) add(compiled, true);
  }
  return out;
}

/** Generated inflections that are blocked, with the entry each reports (for tests and docs). */
export function generatedForms(entries: CompiledEntry[]): Map<string, string> {
  const keys = new Set(entries.map((e) => e.key));
  const out = new Map<string, string>();
  for (const compiled of entries) {
    if (compiled.literal || compiled.words.length !== 1) continue;
    for (const form of inflections(compiled.key)) {
      if (keys.has(form) || out.has(form) || INNOCENT_FORMS.has(form)) continue;
      out.set(form, compiled.entry);
    }
  }
  return out;
}

/** One check in progress. */
interface Run {
  text: string;
  norm: NormalisedText;
  tokens: Token[];
  matches: SafetyMatch[];
  /** Runs of tokens read as one word ("c a l l", "g-i-r-l"), for phrases across them. */
  segments: Segment[];
}

/** Tokens from..to read as one word, with its readings. */
interface Segment {
  from: number;
  to: number;
  forms: string[];
  /** True for a run of several tokens; false for a single token. */
  joined: boolean;
}

/** Leading and trailing one-letter words trimmed from a run of spaced letters ("a f u c k"). */
const ONE_LETTER_WORDS = new Set(["a", "i"]);

class ExplicitFilter implements TextFilter {
  readonly size: number;
  private readonly words = new Map<string, string>();
  private readonly phrases = new Map<string, Phrase[]>();
  private readonly literals: { text: string; entry: string }[] = [];
  private readonly exceptions = new Map<string, Exception[]>();
  /** Every word of every phrase: a run that is none of them cannot be part of a phrase. */
  private readonly phraseWords = new Set<string>();

  constructor(entries: CompiledEntry[]) {
    this.size = new Set(entries.map((e) => e.entry)).size;
    for (const compiled of entries) {
      if (compiled.literal) this.literals.push({ text: compiled.key, entry: compiled.entry });
      else if (compiled.words.length === 1) this.words.set(compiled.key, compiled.entry);
    }
    for (const [form, entry] of generatedForms(entries)) {
      if (!this.words.has(form)) this.words.set(form, entry);
    }
    for (const compiled of entries) {
      if (compiled.literal || compiled.words.length < 2) continue;
      const variants = [compiled.words];
      const last = compiled.words[compiled.words.length - 1] as string;
      for (const form of inflections(last).slice(0, 2)) {
        if (form.endsWith("s") && !INNOCENT_FORMS.has(form)) {
          variants.push([...compiled.words.slice(0, -1), form]);
        }
      }
      for (const words of variants) {
        const first = words[0] as string;
        const list = this.phrases.get(first) ?? [];
        list.push({ words, entry: compiled.entry });
        this.phrases.set(first, list);
        for (const word of words) this.phraseWords.add(word);
        // Written as one word, or spelled out letter by letter ("c a l l g i r l").
        const joined = words.join("");
        if (!this.words.has(joined)) this.words.set(joined, compiled.entry);
      }
    }
    for (const phrase of EXCEPTION_PHRASES) {
      const words = tokenise(normaliseEntry(phrase)).map((t) => t.text);
      words.forEach((word, offset) => {
        const entry = this.words.get(word);
        if (entry === undefined) return;
        const list = this.exceptions.get(entry) ?? [];
        list.push({ words, offset });
        this.exceptions.set(entry, list);
      });
    }
  }

  check(text: string): { blocked: boolean; matches: SafetyMatch[] } {
    const matches: SafetyMatch[] = [];
    if (text.length === 0) return { blocked: false, matches };
    const norm = normaliseText(text);
    const tokens = tokenise(norm.text);
    const run: Run = { text, norm, tokens, matches, segments: [] };
    for (let k = 0; k < tokens.length; k++) {
      const token = tokens[k] as Token;
      if (token.core.length === 0) continue;
      // One word, as written.
      const entry = token.tripleRun ? this.lookup(token.core) : this.words.get(token.core);
      if (entry !== undefined) {
        if (!this.isException(entry, tokens, k))
          this.report(run, entry, token.coreStart, token.coreEnd);
      } else if (token.digits > 0 || token.symbols > 0) {
        this.checkObfuscated(run, token);
      }
      // Phrases starting here, each word as written or de-obfuscated ("h4ving s3x").
      const candidates = this.phrases.get(token.core);
      if (candidates !== undefined) this.checkPhrases(run, candidates, k);
      if (token.letters > 0 && !isPlain(token)) {
        for (const form of wordForms(token)) {
          const more = form === token.core ? undefined : this.phrases.get(form);
          if (more !== undefined) this.checkPhrases(run, more, k);
        }
      }
    }
    this.checkJoined(run);
    if (this.literals.length > 0) this.checkLiterals(run);
    if (matches.length > 1) matches.sort((a, b) => a.index - b.index);
    return { blocked: matches.length > 0, matches };
  }

  private checkPhrases(run: Run, candidates: Phrase[], k: number): void {
    const { tokens } = run;
    for (const phrase of candidates) {
      const n = phrase.words.length;
      if (k + n > tokens.length) continue;
      let ok = true;
      for (let j = 1; j < n && ok; j++) {
        const next = tokens[k + j] as Token;
        const word = phrase.words[j] as string;
        ok = next.core === word || (!isPlain(next) && wordForms(next).includes(word));
      }
      if (ok) {
        const first = tokens[k] as Token;
        this.report(run, phrase.entry, first.coreStart, (tokens[k + n - 1] as Token).coreEnd);
      }
    }
  }

  private report(run: Run, entry: string, start: number, end: number): void {
    const { norm, text, matches } = run;
    const index = norm.start ? (norm.start[start] as number) : start;
    const stop = norm.end ? (norm.end[end - 1] as number) : end;
    // One match per start: the word as written wins over phrases and joined runs from there.
    for (const m of matches) if (m.index === index) return;
    matches.push({ entry, found: text.slice(index, stop), index });
  }

  /** Exact form, or with runs of 3+ equal letters shortened to one or two. */
  private lookup(word: string): string | undefined {
    const entry = this.words.get(word);
    if (entry !== undefined || word.length < 3 || !hasTripleRun(word)) return entry;
    return this.words.get(collapseRuns(word, 1)) ?? this.words.get(collapseRuns(word, 2));
  }

  /** Leetspeak ("sh1t", "a$$"), and the parts around inner symbols ("fuck!you"). */
  private checkObfuscated(run: Run, token: Token): void {
    // forms[0] is the token as written, looked up already.
    const forms = readsAsLeet(token.letters, token.digits) ? wordForms(token) : [];
    for (let i = 1; i < forms.length; i++) {
      const entry = this.lookup(forms[i] as string);
      if (entry !== undefined) {
        this.report(run, entry, token.start, token.end);
        return;
      }
    }
    if (token.symbols > 0) {
      const text = token.text;
      let partStart = 0;
      for (let i = 0; i <= text.length; i++) {
        const ch = text[i];
        if (i < text.length && ch !== "@" && ch !== "$" && ch !== "!" && ch !== "+") continue;
        if (i > partStart && (partStart > 0 || i < text.length)) {
          const entry = this.lookup(text.slice(partStart, i));
          if (entry !== undefined) {
            this.report(run, entry, token.start + partStart, token.start + i);
          }
        }
        partStart = i + 1;
      }
    }
  }

  /**
   * Words split by separators: runs of tokens joined by short non-space separators
   * ("f.u.c.k", "fu-ck", "f_u_c_k") and runs of three or more one-character tokens separated by
   * up to three non-word characters, spaces included ("f u c k"). A run is matched as a whole
   * (and with a leading or trailing "a"/"i" word trimmed), never in parts, so "a s s e t s"
   * stays "assets".
   */
  private checkJoined(run: Run): void {
    const { tokens } = run;
    const text = run.norm.text;
    // Tight runs: gaps of 1–2 characters without whitespace.
    let k = 0;
    while (k < tokens.length) {
      let m = k;
      while (m + 1 < tokens.length && m - k < 15) {
        const gapStart = (tokens[m] as Token).end;
        const gapEnd = (tokens[m + 1] as Token).start;
        if (gapEnd - gapStart > 2 || hasSpace(text, gapStart, gapEnd)) break;
        m++;
      }
      if (m > k) this.checkRun(run, k, m, false);
      k = m + 1;
    }
    // Spaced runs of one-character tokens.
    let s = 0;
    while (s < tokens.length) {
      if ((tokens[s] as Token).text.length !== 1) {
        s++;
        continue;
      }
      let e = s;
      while (
        e + 1 < tokens.length &&
        e - s < 40 &&
        (tokens[e + 1] as Token).text.length === 1 &&
        (tokens[e + 1] as Token).start - (tokens[e] as Token).end <= 3 &&
        !hasComma(text, (tokens[e] as Token).end, (tokens[e + 1] as Token).start)
      ) {
        e++;
      }
      if (e - s >= 2 && hasSpace(text, (tokens[s] as Token).end, (tokens[e] as Token).start)) {
        this.checkRun(run, s, e, true);
      }
      s = e + 1;
    }
    if (run.segments.length > 0) this.checkPhrasesAcrossRuns(run);
  }

  /**
   * Phrases whose words are written as runs ("c a l l girl", "w-i-t-h-o-u-t c.l.o.t.h.e.s"):
   * the tokens read again with each run as one word. Phrases without a run were checked
   * token by token already.
   */
  private checkPhrasesAcrossRuns(run: Run): void {
    const { tokens } = run;
    const startsAt = new Map<number, Segment>();
    for (const segment of run.segments) {
      const current = startsAt.get(segment.from);
      if (current === undefined || segment.to > current.to) startsAt.set(segment.from, segment);
    }
    const sequence: Segment[] = [];
    for (let k = 0; k < tokens.length; ) {
      const segment = startsAt.get(k);
      if (segment !== undefined) {
        sequence.push(segment);
        k = segment.to + 1;
      } else {
        const token = tokens[k] as Token;
        const forms = isPlain(token) ? [token.core] : wordForms(token);
        sequence.push({ from: k, to: k, forms, joined: false });
        k++;
      }
    }
    for (let i = 0; i < sequence.length; i++) {
      for (const form of (sequence[i] as Segment).forms) {
        for (const phrase of this.phrases.get(form) ?? []) {
          const n = phrase.words.length;
          if (i + n > sequence.length) continue;
          let ok = true;
          let joined = false;
          for (let j = 0; j < n && ok; j++) {
            const segment = sequence[i + j] as Segment;
            joined ||= segment.joined;
            ok = j === 0 || segment.forms.includes(phrase.words[j] as string);
          }
          if (!ok || !joined) continue;
          const first = tokens[(sequence[i] as Segment).from] as Token;
          const last = tokens[(sequence[i + n - 1] as Segment).to] as Token;
          this.report(run, phrase.entry, first.start, last.end);
        }
      }
    }
  }

  private checkRun(run: Run, from: number, to: number, trimOneLetterWords: boolean): void {
    const { tokens } = run;
    let joined = "";
    let letters = 0;
    let digits = 0;
    for (let j = from; j <= to; j++) {
      const t = tokens[j] as Token;
      joined += t.text;
      letters += t.letters;
      digits += t.digits;
    }
    const decode = readsAsLeet(letters, digits);
    const headTrim =
      trimOneLetterWords && ONE_LETTER_WORDS.has((tokens[from] as Token).text) ? 1 : 0;
    const tailTrim = trimOneLetterWords && ONE_LETTER_WORDS.has((tokens[to] as Token).text) ? 1 : 0;
    // Only a run that reads as a phrase word can be part of a phrase ("c a l l" girl).
    if (decode || headTrim || tailTrim || hasTripleRun(joined)) {
      const forms = runForms(joined, decode);
      if (headTrim) forms.push(...runForms(joined.slice(1), decode));
      if (tailTrim) forms.push(...runForms(joined.slice(0, -1), decode));
      if (forms.some((form) => this.phraseWords.has(form))) {
        run.segments.push({ from, to, forms, joined: true });
      }
    } else if (this.phraseWords.has(joined)) {
      run.segments.push({ from, to, forms: [joined], joined: true });
    }
    if (this.tryRun(run, joined, from, to, decode) || !trimOneLetterWords) return;
    if (to - from + 1 - headTrim < 3) return;
    if (headTrim && this.tryRun(run, joined.slice(1), from + 1, to, decode)) return;
    if (tailTrim && to - from >= 3) {
      if (this.tryRun(run, joined.slice(0, -1), from, to - 1, decode)) return;
      if (headTrim && to - from >= 4)
        this.tryRun(run, joined.slice(1, -1), from + 1, to - 1, decode);
    }
  }

  private tryRun(run: Run, word: string, from: number, to: number, decode: boolean): boolean {
    let entry = this.lookup(word);
    if (entry === undefined && decode) {
      for (const decoded of decodeLeet(word)) {
        entry = this.lookup(decoded);
        if (entry !== undefined) break;
      }
    }
    if (entry === undefined) return false;
    this.report(run, entry, (run.tokens[from] as Token).start, (run.tokens[to] as Token).end);
    return true;
  }

  /** Entries that are not words ("🖕", "s&m"): substring search with word boundaries. */
  private checkLiterals(run: Run): void {
    const text = run.norm.text;
    for (const { text: literal, entry } of this.literals) {
      let from = 0;
      for (;;) {
        const at = text.indexOf(literal, from);
        if (at < 0) break;
        const end = at + literal.length;
        const before = at > 0 ? text.charCodeAt(at - 1) : 32;
        const after = end < text.length ? text.charCodeAt(end) : 32;
        if (!isAsciiWordChar(before) && !isAsciiWordChar(after)) this.report(run, entry, at, end);
        from = at + 1;
      }
    }
  }

  private isException(entry: string, tokens: Token[], k: number): boolean {
    const list = this.exceptions.get(entry);
    if (list === undefined) return false;
    for (const { words, offset } of list) {
      const first = k - offset;
      if (first < 0 || first + words.length > tokens.length) continue;
      let ok = true;
      for (let j = 0; j < words.length && ok; j++) {
        ok = (tokens[first + j] as Token).core === words[j];
      }
      if (ok) return true;
    }
    return false;
  }
}

/**
 * Digits are read as letters when the word has two letters or more ("b00b5", "70pl3$$"), or
 * one letter and no more digits than letters: "a55" and "4k" (a phone model, a resolution) stay
 * themselves.
 */
function readsAsLeet(letters: number, digits: number): boolean {
  return letters >= 2 || (letters === 1 && digits <= 1);
}

/** A token with nothing to decode: no digits, no symbols, no run of three equal letters. */
function isPlain(token: Token): boolean {
  return token.digits === 0 && token.symbols === 0 && !token.tripleRun;
}

/**
 * The readings of an obfuscated token: as written, leet decoded, repeated letters shortened.
 * Computed once per token (the word check and the phrase check both need them).
 */
function wordForms(token: Token): string[] {
  if (token.forms !== undefined) return token.forms;
  const forms = [token.core];
  token.forms = forms;
  const decode =
    (token.digits > 0 || token.symbols > 0) && readsAsLeet(token.letters, token.digits);
  if (!decode && !token.tripleRun) return forms;
  if (decode) forms.push(...decodeLeet(token.text));
  const count = forms.length;
  for (let i = 0; i < count; i++) {
    const form = forms[i] as string;
    if (hasTripleRun(form)) forms.push(collapseRuns(form, 1), collapseRuns(form, 2));
  }
  return forms;
}

/** The readings of a run joined into one word: as written, leet decoded, repeats shortened. */
function runForms(joined: string, decode: boolean): string[] {
  const forms = [joined];
  if (!decode && !hasTripleRun(joined)) return forms;
  if (decode) forms.push(...decodeLeet(joined));
  for (const form of [...forms]) {
    if (hasTripleRun(form)) forms.push(collapseRuns(form, 1), collapseRuns(form, 2));
  }
  return forms;
}

/** A comma ends a run of spaced letters: "an o r g a s m, 8 0 mm" is "orgasm", then "80". */
function hasComma(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 44) return true;
  return false;
}

function hasSpace(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13) || c === 0xa0) return true;
  }
  return false;
}

function isAsciiWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
}

/**
 * Loads the explicit-text filter: the shipped blocklist (see README.md), plus
 * `extraBlockedWords`, minus `allowedWords`. Synchronous; a few milliseconds, so each worker
 * thread can load its own.
 */
export function loadExplicitFilter(options: FilterOptions = {}): TextFilter {
  return new ExplicitFilter(compileBlocklist(options));
}

const loaded = new WeakMap<FilterOptions, TextFilter>();

/**
 * The filter for one configuration object (config.safety), loaded on first use and shared:
 * commands that have no pipeline (`prompt`) use it without reloading the list per call.
 */
export function explicitFilterFor(options: FilterOptions): TextFilter {
  let filter = loaded.get(options);
  if (filter === undefined) {
    filter = loadExplicitFilter(options);
    loaded.set(options, filter);
  }
  return filter;
}
