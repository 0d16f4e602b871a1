/**
 * Offline prompt-quality measures for arms (see prompts.ts): the companion of the human study.
 *
 * @example
 * const report = await evaluatePrompts([evalArm("ft-tags", await arms.get("ft-tags"))], {
 *   concepts: ["a dog", "a lighthouse"], count: 20, seed: 1, filter: loadExplicitFilter(),
 * });
 * console.log(formatEvalTable(report));
 */
export { readConcepts } from "./concepts.js";
export {
  type ArmReport,
  type ConceptResult,
  distinctN,
  type EvalArm,
  evalArm,
  evaluatePrompts,
  formatEvalTable,
  isGlued,
  type PromptEvalOptions,
  type PromptEvalReport,
  type SimilarityScorer,
} from "./prompts.js";
