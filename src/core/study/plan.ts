/**
 * The paper's batch design as a plan: concepts × prompts per concept × arms items (10 × 5 × 3 =
 * 150), dealt into surveys of equal size (2 × 75) so that every survey holds each arm, and each
 * (concept, arm) cell, as evenly as the numbers allow, then shuffled within each survey.
 *
 * How the deal works: the items are laid out stratum by stratum — arms in random order, within
 * an arm its concepts in random order, within a (concept, arm) cell its prompts in random
 * order — and dealt round-robin to the surveys from a random starting survey, the counter
 * running on across strata. Every contiguous run of m items (one arm's items, one cell's items,
 * all of them) then lands as ⌊m/S⌋ or ⌈m/S⌉ per survey: 50 per arm → 25/25, 150 → 75/75, a
 * cell of 5 → 3/2 with the extra alternating between surveys from one cell to the next.
 *
 * Seeds: each (concept, prompt index) gets one 32-bit seed shared by every arm, so arms compared
 * on the same concept and prompt slot differ only in the prompt generator (a matched design).
 * Deterministic: the same options and seed give the same plan (sfc32 from src/core/random.ts).
 */
import { type RandomSource, seededRandom } from "../random.js";

export interface StudyPlanOptions {
  /** The subjects (the paper's 10 noun phrases). */
  concepts: readonly string[];
  /** Prompts (images) per concept and arm (the paper: 5). */
  promptsPerConcept: number;
  /** The arms compared (the paper: base, ft-no-tags, ft-tags). */
  arms: readonly string[];
  /** Surveys the images are split into (the paper: 2). */
  surveys: number;
  seed: number;
}

/** One image to make and post. `id` says nothing about the arm: it is safe to show. */
export interface PlanItem {
  /** "s1-007": survey 1, position 7 within it (1-based). */
  id: string;
  /** 1-based survey number. */
  survey: number;
  /** 1-based position within the survey (the posting order). */
  position: number;
  concept: string;
  /** 1-based prompt slot of the concept (1…promptsPerConcept). */
  promptIndex: number;
  arm: string;
  /** The imagine seed (prompts and image): shared by the arms for one (concept, prompt slot). */
  seed: number;
}

export interface StudyPlan {
  seed: number;
  concepts: string[];
  arms: string[];
  promptsPerConcept: number;
  surveys: number;
  /** Every item in posting order: survey 1 in its shuffled order, then survey 2, … */
  items: PlanItem[];
}

export function makeStudyPlan(options: StudyPlanOptions): StudyPlan {
  const concepts = checkNames(options.concepts, "concept");
  const arms = checkNames(options.arms, "arm");
  const { promptsPerConcept, surveys, seed } = options;
  if (!Number.isInteger(promptsPerConcept) || promptsPerConcept < 1) {
    throw new RangeError(`promptsPerConcept must be a whole number ≥ 1, got ${promptsPerConcept}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const total = concepts.length * arms.length * promptsPerConcept;
  if (!Number.isInteger(surveys) || surveys < 1 || surveys > total) {
    throw new RangeError(`surveys must be a whole number from 1 to ${total}, got ${surveys}`);
  }
  const random = seededRandom(seed);
  // One seed per (concept, prompt slot), drawn in a fixed order before any shuffling.
  const seeds = concepts.map(() =>
    Array.from({ length: promptsPerConcept }, () => Math.floor(random.next() * 2 ** 32)),
  );

  const groups: Omit<PlanItem, "id" | "survey" | "position">[][] = Array.from(
    { length: surveys },
    () => [],
  );
  let counter = Math.floor(random.next() * surveys);
  for (const arm of shuffle([...arms], random)) {
    for (const c of shuffle(
      concepts.map((_, i) => i),
      random,
    )) {
      const slots = shuffle(
        Array.from({ length: promptsPerConcept }, (_, i) => i),
        random,
      );
      for (const p of slots) {
        (groups[counter % surveys] as Omit<PlanItem, "id" | "survey" | "position">[]).push({
          concept: concepts[c] as string,
          promptIndex: p + 1,
          arm,
          seed: (seeds[c] as number[])[p] as number,
        });
        counter++;
      }
    }
  }
  const width = String(Math.max(...groups.map((g) => g.length))).length;
  const items = groups.flatMap((group, s) =>
    shuffle(group, random).map((item, i) => ({
      id: `s${s + 1}-${String(i + 1).padStart(Math.max(width, 3), "0")}`,
      survey: s + 1,
      position: i + 1,
      ...item,
    })),
  );
  return { seed, concepts, arms, promptsPerConcept, surveys, items };
}

/** Survey and position from a plan item id ("s2-007" → 2, 7), or undefined for another text. */
export function parsePlanItemId(id: string): { survey: number; position: number } | undefined {
  const match = /^s(\d+)-(\d+)$/.exec(id);
  if (match === null) return undefined;
  const survey = Number(match[1]);
  const position = Number(match[2]);
  return survey >= 1 && position >= 1 ? { survey, position } : undefined;
}

/** The plan's items grouped by survey (index 0 = survey 1), each in posting order. */
export function planSurveys(plan: StudyPlan): PlanItem[][] {
  const surveys: PlanItem[][] = Array.from({ length: plan.surveys }, () => []);
  for (const item of plan.items) surveys[item.survey - 1]?.push(item);
  return surveys;
}

/** Fisher–Yates in place, with the given random source. */
export function shuffle<T>(values: T[], random: RandomSource): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    const picked = values[j] as T;
    values[j] = values[i] as T;
    values[i] = picked;
  }
  return values;
}

function checkNames(values: readonly string[], what: string): string[] {
  const names = values.map((value) => value.trim());
  if (names.length === 0) throw new RangeError(`at least one ${what} is needed`);
  if (names.some((name) => name === "")) throw new RangeError(`a ${what} is empty`);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new RangeError(`${what} "${duplicate}" is listed twice`);
  return names;
}
