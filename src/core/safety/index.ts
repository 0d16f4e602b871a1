/**
 * The explicit-text filter for training captions, chat subjects and generated prompts, the
 * subject gate every entry point uses, and the resample-then-refuse check of generated prompts.
 * One blocklist (naughty-words/LDNOOBW CC-BY-4.0, badwords-list MIT, a selection of profanities
 * MIT; see README.md), matched whole-word and whole-phrase after Unicode normalisation and
 * de-obfuscation.
 *
 * @example
 * const filter = loadExplicitFilter({ extraBlockedWords: ["gore"], allowedWords: [] });
 * filter.check("a peacock in Scunthorpe").blocked;   // false
 * filter.check("f.u.c.k this").matches;               // [{ entry: "fuck", found: "f.u.c.k", index: 0 }]
 */
export {
  explicitFilterFor,
  type FilterOptions,
  loadExplicitFilter,
  type SafetyMatch,
  type TextFilter,
} from "./filter.js";
export {
  type CheckedPrompts,
  derivedSeed,
  noCleanPromptError,
  PROMPT_RESAMPLES,
  type PromptRefusal,
  writeCheckedPrompts,
} from "./prompts.js";
export {
  cleanText,
  findLink,
  gateSubject,
  type SubjectGateOptions,
  stripMarkup,
  validateSubject,
} from "./subject.js";
