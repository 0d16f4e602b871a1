import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  countPhrases,
  extractConcepts,
  foldTitleCase,
  PhraseExtractor,
  rankConcepts,
  scoreConcept,
} from "../../src/core/data/concepts.js";
import {
  loadNounSenses,
  lookupSenses,
  type NounSenses,
  parseIndexNoun,
  wordnetDir,
} from "../../src/core/data/wordnet.js";
import { runCli } from "../helpers/cli.js";

const _ROOT = resolve(import.meta.dirname, "..", "..");

/** Six lighthouses (1 sense), six banks (10 senses), three red foxes, one rare kite. */
const CORPUS = [
  ...Array.from({ length: 6 }, (_, i) => `a lighthouse on the coast, picture ${i}`),
  ...Array.from({ length: 6 }, (_, i) => `the bank in the town, picture ${i}`),
  "a red fox in the snow",
  "A red fox and another red fox in the snow",
  "red foxes in the snow",
  "a child flies a kite",
  "",
  "   ",
];

let dir: string;
let corpus: string;
let senses: NounSenses;
let extractor: PhraseExtractor;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-concepts-"));
  corpus = join(dir, "captions.txt");
  await writeFile(corpus, `${CORPUS.join("\n")}\n`);
  senses = await loadNounSenses();
  extractor = new PhraseExtractor(senses);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("noun phrases", () => {
  it("finds the noun phrases of a caption, without determiners", () => {
    expect(extractor.extract("a red fox in the snow")).toEqual(["red fox", "snow"]);
    expect(extractor.extract("A lighthouse on a cliff at sunset")).toEqual([
      "lighthouse",
      "cliff",
      "sunset",
    ]);
  });

  it("singularises the head, strips possessives and quantifiers, keeps hyphenated words", () => {
    expect(extractor.extract("Two dogs with their owners")).toEqual(["dog", "owner"]);
    expect(extractor.extract("several other children")).toEqual(["child"]);
    expect(extractor.extract("a man in a red t-shirt")).toEqual(["man", "red t-shirt"]);
    expect(extractor.extract("men in t-shirts")).toEqual(["man", "t-shirt"]);
  });

  it("keeps regular plurals WordNet lists as nouns of their own", () => {
    expect(extractor.extract("a boy in jeans")).toEqual(["boy", "jeans"]);
    expect(new PhraseExtractor().extract("a boy in jeans")).toEqual(["boy", "jean"]);
  });

  it("reads Title Case alt text as lowercase, other captions as written", () => {
    expect(foldTitleCase("Men's Red T-Shirts With Funny Hats")).toBe(
      "men's red t-shirts with funny hats",
    );
    expect(foldTitleCase("A view of London from the river")).toBe(
      "A view of London from the river",
    );
    expect(extractor.extract("Men's Red T-Shirts With Funny Hats")).toEqual([
      "man",
      "red t-shirt",
      "funny hat",
    ]);
    expect(extractor.extract("Tower Bridge in London at night")).toEqual([
      "tower bridge",
      "london",
      "night",
    ]);
  });

  it("gives each phrase once per caption", () => {
    expect(extractor.extract("The dog and the other dog and dogs")).toEqual(["dog"]);
  });

  it("drops numbers and symbols", () => {
    expect(extractor.extract("2 cats, 3d model")).toEqual(["cat", "model"]);
  });
});

describe("WordNet senses", () => {
  it("reads synset_cnt from index.noun, as the file says", () => {
    const text = readFileSync(join(wordnetDir(), "index.noun"), "utf8");
    const fromFile = (lemma: string) =>
      Number(
        text
          .split("\n")
          .find((line) => line.startsWith(`${lemma} n `))
          ?.split(" ")[2],
      );
    for (const lemma of ["bank", "lighthouse", "red_fox", "dog"]) {
      expect(senses.get(lemma)).toBe(fromFile(lemma));
    }
    expect(senses.get("bank")).toBe(10); // WordNet 3.1
    expect(senses.get("lighthouse")).toBe(1);
  });

  it("skips the licence header and parses the counts", () => {
    const parsed = parseIndexNoun(
      "  1 This software and database is being provided\n" +
        "bank n 10 5 @ ~ #m %p + 10 4 09236472 08437235\n" +
        "ice_cream n 1 2 @ ~ 1 1 07630112\n",
    );
    expect([...parsed]).toEqual([
      ["bank", 10],
      ["ice_cream", 1],
    ]);
  });

  it("looks up the phrase, then shorter compounds, then the head", () => {
    expect(lookupSenses(senses, ["red", "fox"])).toEqual({ lemma: "red_fox", senses: 3 });
    expect(lookupSenses(senses, ["melting", "ice", "cream"])).toEqual({
      lemma: "ice_cream",
      senses: 1,
    });
    expect(lookupSenses(senses, ["pink", "lighthouse"])).toEqual({
      lemma: "lighthouse",
      senses: 1,
    });
    expect(lookupSenses(senses, ["zzyzxq"])).toBeNull();
  });

  it("parses index.noun once", async () => {
    expect(await loadNounSenses()).toBe(senses);
  });
});

describe("score", () => {
  it("rises with frequency, falls with senses and beyond three words", () => {
    const base = scoreConcept(100, 1000, 1, 1);
    expect(base.ambiguityScore).toBe(1);
    expect(base.lengthScore).toBe(1);
    expect(base.frequencyScore).toBeCloseTo(Math.log(101) / Math.log(1001));
    expect(base.total).toBeCloseTo(base.frequencyScore);
    expect(scoreConcept(200, 1000, 1, 1).total).toBeGreaterThan(base.total);
    expect(scoreConcept(100, 1000, 10, 1).ambiguityScore).toBeCloseTo(1 / (1 + Math.log(10)));
    expect(scoreConcept(100, 1000, 1, 3).lengthScore).toBe(1);
    expect(scoreConcept(100, 1000, 1, 4).lengthScore).toBeCloseTo(9 / 16);
    // Unknown to WordNet: scored as two senses.
    expect(scoreConcept(100, 1000, null, 1).ambiguityScore).toBeCloseTo(1 / (1 + Math.log(2)));
  });
});

describe("counting and ranking", () => {
  it("counts a phrase once per caption and skips empty captions", async () => {
    const counts = await countPhrases(CORPUS, { extractor });
    expect(counts.captions).toBe(16);
    expect(counts.phrases.get("red fox")?.count).toBe(3);
    expect(counts.phrases.get("snow")?.count).toBe(3);
    expect(counts.phrases.get("lighthouse")?.count).toBe(6);
    expect(counts.phrases.get("red fox")?.examples).toEqual([
      "a red fox in the snow",
      "A red fox and another red fox in the snow",
    ]);
  });

  it("stops after --limit captions", async () => {
    const counts = await countPhrases(CORPUS, { extractor, limit: 3 });
    expect(counts.captions).toBe(3);
    expect(counts.phrases.get("lighthouse")?.count).toBe(3);
    expect(counts.phrases.has("bank")).toBe(false);
  });

  it("ranks a frequent unambiguous phrase above rare or ambiguous ones", async () => {
    const counts = await countPhrases(CORPUS, { extractor });
    const ranked = rankConcepts(counts, senses, { top: 100, minCount: 1 });
    const rank = (phrase: string) => ranked.find((c) => c.phrase === phrase)?.rank ?? Infinity;
    expect(ranked[0]?.phrase).toBe("lighthouse");
    expect(rank("lighthouse")).toBeLessThan(rank("bank")); // same count, 1 vs 10 senses
    expect(rank("lighthouse")).toBeLessThan(rank("red fox")); // more frequent, fewer senses
    expect(rank("red fox")).toBeLessThan(rank("kite")); // more frequent, fewer senses
    expect(ranked.map((c) => c.rank)).toEqual(ranked.map((_, i) => i + 1));
    for (const [a, b] of ranked.slice(1).map((c, i) => [ranked[i], c] as const)) {
      expect(a?.total).toBeGreaterThanOrEqual(b.total);
    }
    const bank = ranked.find((c) => c.phrase === "bank");
    expect(bank).toMatchObject({ senses: 10, wordnetLemma: "bank", words: 1, count: 6 });
  });

  it("ranks only phrases seen --min-count times, best --top", async () => {
    const report = await extractConcepts({ inputs: [corpus], top: 2, minCount: 4 });
    expect(report).toMatchObject({ captions: 16, malformed: 0, candidates: 5 });
    // lighthouse, coast, town, bank (6 captions each), picture (12): ties go alphabetically.
    expect(report.concepts.map((c) => c.phrase)).toEqual(["lighthouse", "coast"]);
  });
});

describe("imagine-bot data concepts", () => {
  it("prints the subjects as JSON, with every part of the score and examples", async () => {
    const { code, stdout, stderr } = await runCli([
      "data",
      "concepts",
      "--input",
      corpus,
      "--min-count",
      "2",
      "--top",
      "3",
      "--json",
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const concepts = JSON.parse(stdout);
    expect(concepts).toHaveLength(3);
    for (const concept of concepts) {
      expect(Object.keys(concept).sort()).toEqual(
        [
          "ambiguityScore",
          "count",
          "examples",
          "frequencyScore",
          "lengthScore",
          "phrase",
          "rank",
          "senses",
          "total",
          "wordnetLemma",
          "words",
        ].sort(),
      );
      expect(concept.examples.length).toBeLessThanOrEqual(2);
    }
    expect(concepts[0]).toMatchObject({ rank: 1, phrase: "lighthouse", count: 6, senses: 1 });
  });

  it("prints a table and honours --limit", async () => {
    const { code, stdout } = await runCli([
      "data",
      "concepts",
      "--input",
      corpus,
      "--limit",
      "6",
      "--min-count",
      "1",
    ]);
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^# 6 captions, /);
    expect(lines[2]?.split(/\s+/)).toEqual([
      "rank",
      "phrase",
      "count",
      "senses",
      "words",
      "frequency",
      "ambiguity",
      "length",
      "total",
    ]);
    expect(lines[3]).toMatch(/^\s*1\s+lighthouse\s+6\s+1\s+1\s/);
    expect(stdout).not.toContain("bank");
  });

  it("fails with a usage error for a missing file", async () => {
    const { code, stderr } = await runCli(["data", "concepts", "--input", join(dir, "none.txt")]);
    expect(code).toBe(2);
    expect(stderr).toContain("none.txt");
  });
});
