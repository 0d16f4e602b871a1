/**
 * Explicit vocabulary added to the three npm lists (blocklist.ts): nudity, sexual acts, sex
 * work and adult sites as text-to-image users write them. Each group names where its entries
 * come from; every entry was vetted by hand against the DROPPED rule in README.md (its dominant
 * meaning in the caption of an ordinary image is explicit). Provenance and licences: README.md.
 */

/** Where an added entry comes from. */
export type VocabularySource =
  | "google-profanity-words"
  | "cc2dataset"
  | "laion-nsfw-keywords"
  | "imagine-bot";

export interface VocabularyGroup {
  source: VocabularySource;
  entries: readonly string[];
}

export const ADDED_VOCABULARY: readonly VocabularyGroup[] = [
  {
    // github.com/coffee-and-fun/google-profanity-words data/en.txt (MIT): the explicit and slur
    // entries the npm lists lack; its mild or ordinary ones (balls, bum, fool, dumb…) are not taken.
    source: "google-profanity-words",
    entries: [
      ...["assbag", "assbandit", "assbanger", "assbite", "asscock", "asscracker", "assface"],
      ...["assgoblin", "asshead", "asshopper", "assjacker", "asssucker", "asswad", "boobie"],
      ...["clitface", "cockbite", "cockburger", "cockjockey", "cockknoker", "cockmaster"],
      ...["cockmongler", "cockmongruel", "cockmonkey", "cocknose", "cocknugget", "cockshit"],
      ...["coochie", "coochy", "cooter", "cumdumpster", "cumguzzler", "cumslut", "cumtart"],
      ...["cunnie", "cuntface", "cunthole", "cuntrag", "dickbag", "dickbeater", "dickface"],
      ...["dickhole", "dickjuice", "dickmilk", "dickmonger", "dickslap", "dicksucker"],
      ...["dickweasel", "dickwod", "dumbshit", "dumshit", "fagbag", "faggit", "fagtard"],
      ...["gayass", "gaytard", "gaywad", "kiunt", "kunt", "lezzie", "minge", "panooch"],
      ...["peckerhead", "pissflap", "polesmoker", "poonani", "poonany", "punanny", "pusies"],
      ...["pussylicking", "pusy", "queerbait", "queerhole", "shitass", "shitbag", "shitbagger"],
      ...["shitbrain", "shitbreath", "shitcunt", "shiteating", "shithole", "shitload"],
      ...["shitpot", "shitspitter", "shittiest", "shity", "slutbag", "thundercunt", "twatlips"],
      ...["va-j-j", "vjayjay"],
    ],
  },
  {
    // github.com/rom1504/cc2dataset cc2dataset/kenlm/flagged_words.py, set "en" (MIT; LAION's
    // Common Crawl extractor): adult sites and explicit terms the other lists lack.
    source: "cc2dataset",
    entries: [
      ...["bigboobs", "brazzers", "cuckold", "footfetish", "pornhub", "pornstar", "pornstars"],
      ...["redtube", "videosbang", "voyeurism", "xhamster", "xnxx", "xvideos", "youporn"],
    ],
  },
  {
    // github.com/LAION-AI/CLIP-based-NSFW-Detector keywords.json (MIT): its explicit-content,
    // malicious and sexual-object phrases, and the explicit ones among its "borderline" groups.
    source: "laion-nsfw-keywords",
    entries: [
      ...["lap dancing", "naked body", "fetishes", "adult content", "rule 34", "fleshlight"],
      ...["unclothed", "bottomless woman", "bottomless women", "bottomless men", "onlyfans"],
      ...["spreading legs", "loli"],
    ],
  },
  {
    // Written for imagine-bot (MIT, like the project): how text-to-image users ask for nudity,
    // sex, sex work and adult content, found missing on held-out explicit prompts.
    source: "imagine-bot",
    entries: [
      // nudity
      ...["naked", "nakedness", "nudist", "nudism", "undressed", "stripteaser"],
      ...["in the nude", "no clothes", "without clothes", "wearing nothing", "fully nude"],
      ...["bare breasts", "bare breast", "naked breasts", "exposed breasts", "breasts exposed"],
      ...["huge breasts", "large breasts", "giant breasts", "perfect breasts", "exposed nipples"],
      ...["nip slip", "nipple slip", "areola", "areolae", "genital", "genitalia"],
      ...["erect penis", "erection", "pubic hair", "bottomless girl", "downblouse"],
      // sexual acts and explicit media
      ...["having sex", "making love", "make love", "sexual intercourse", "oral sex"],
      ...["copulating", "copulation", "fornicating", "fornication", "ahegao", "erotica", "lewd"],
      ...["rule34", "r34", "pornographic", "porn star", "adult film", "adult video"],
      ...["adult movie", "sex tape", "sextape", "sex video", "sexting", "dick pic", "cock ring"],
      ...["butt plug", "cowgirl position", "lolicon", "shotacon", "nhentai", "jerking off"],
      ...["jacking off"],
      // sex work
      ...["prostitute", "prostitution", "call girl", "escort girl", "escort service"],
      ...["escort agency", "brothel", "whorehouse", "stripper", "striptease", "strip tease"],
      ...["lap dance", "peep show", "sex worker", "sex work", "cam girl", "fansly", "only fans"],
      // adult sites
      ...["chaturbate", "spankbang", "naughtyamerica", "realitykings", "hentaihaven"],
    ],
  },
];

/**
 * Innocent phrases around added or kept entries: a match inside one is not reported. "nude"
 * stays blocked, except as the colour of cosmetics and clothes; "naked" except in these.
 */
export const ADDED_EXCEPTIONS: readonly string[] = [
  ...["naked eye", "naked eyes", "naked mole rat", "naked mole rats", "naked cake"],
  ...["naked cakes", "naked juice", "naked chef", "naked flame", "naked truth"],
  ...["nude lipstick", "nude lip", "nude lips", "nude heels", "nude pumps", "nude shoes"],
  ...["nude sandals", "nude nails", "nude nail", "nude polish", "nude makeup", "nude color"],
  ...["nude colour", "nude colored", "nude coloured", "nude tone", "nude beige", "nude pink"],
];
