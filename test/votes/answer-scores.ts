import type { Dimension } from "../../src/core/types.js";

/** The scores answer-child.ts gives rater i (answer-kill.test.ts checks them). */
export function answerScores(i: number): Record<Dimension, number> {
  return { quality: 1 + (i % 4), faithfulness: 1 + ((i >> 2) % 4) };
}
