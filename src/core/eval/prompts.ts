/**
 * The prompt-quality harness: the offline companion of the human study. For each arm it writes
 * n prompts per concept (one batch per concept, seeded) and measures what a reader of the
 * prompts would notice first:
 *
 * - complete: the model closed the caption with its end tag (untagged arms never do);
 * - subject kept: the prompt starts with the concept, verbatim;
 * - glued: the continuation does not start a new word ("a dogmill") where the script has spaces;
 * - tag fragments: text of a start or end tag, whole or partial (cleanOutput's detector);
 * - explicit: blocked by the project's explicit-text filter;
 * - distinct-1 / distinct-2: unique word unigrams / bigrams over all of them, within the prompts
 *   of one concept (continuations only, lower-cased), averaged over concepts;
 * - length: mean and p90 of the whole prompt in GPT-2 tokens, next to the arm's cap on new
 *   tokens and the mean caption length of its training data (when the model says);
 * - time per prompt: generation wall time divided by the prompts written;
 * - similarity: subject–prompt similarity from a `SimilarityScorer` (a CLIP text encoder, say),
 *   null when none is given. This is the hook a later scorer plugs into.
 */
import {
  findTagFragment,
  needsWordBoundary,
  startsNewWord,
  tagTexts,
} from "../prompt/cleanOutput.js";
import { OnnxPromptGenerator } from "../prompt/onnxGenerator.js";
import { encodeText } from "../prompt/tokenizer.js";
import type { TextFilter } from "../safety/index.js";
import type { PromptGenerator } from "../types.js";

/** One prompt generator under evaluation. */
export interface EvalArm {
  name: string;
  generator: PromptGenerator;
  /** The cap on new tokens the generator uses by default, when known. */
  cap: number | null;
  /** Mean GPT-2 token length of the captions the model was trained on, when known. */
  trainingMeanTokens: number | null;
  /** Tag texts whose fragments count against the arm (tagTexts of its model). */
  tags: readonly string[];
}

/**
 * Scores how well each prompt keeps to its subject, higher is closer (e.g. the cosine of CLIP
 * text embeddings). The harness reports the mean over all prompts of an arm.
 */
export interface SimilarityScorer {
  readonly name: string;
  score(subject: string, prompts: readonly string[]): Promise<number[]>;
}

export interface PromptEvalOptions {
  concepts: readonly string[];
  /** Prompts per concept (one batch). */
  count: number;
  seed: number;
  filter: TextFilter;
  similarity?: SimilarityScorer;
  /** Overrides every arm's cap on new tokens. */
  maxNewTokens?: number;
}

export interface ConceptResult {
  concept: string;
  distinct1: number;
  distinct2: number;
  prompts: { text: string; complete: boolean; tokens: number }[];
}

export interface ArmReport {
  arm: string;
  prompts: number;
  /** Shares in [0, 1]. */
  complete: number;
  subjectKept: number;
  /** Counts. */
  glued: number;
  tagFragments: number;
  explicit: number;
  distinct1: number;
  distinct2: number;
  meanTokens: number;
  p90Tokens: number;
  cap: number | null;
  trainingMeanTokens: number | null;
  msPerPrompt: number;
  /** Mean subject–prompt similarity, or null without a scorer. */
  similarity: number | null;
  similarityScorer: string | null;
  concepts: ConceptResult[];
}

export interface PromptEvalReport {
  seed: number;
  count: number;
  concepts: string[];
  arms: ArmReport[];
}

/** Unique n-grams / all n-grams over the given word lists (1 when there are none). */
export function distinctN(texts: readonly string[], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const text of texts) {
    const words = text.toLowerCase().split(/\s+/u).filter(Boolean);
    for (let i = 0; i + n <= words.length; i++) {
      seen.add(words.slice(i, i + n).join(" "));
      total += 1;
    }
  }
  return total === 0 ? 1 : seen.size / total;
}

/** The value below which 90% of the sorted values fall (nearest rank). */
function p90(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(0.9 * sorted.length) - 1] as number;
}

const mean = (values: readonly number[]): number =>
  values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;

/** Whether a prompt glues its continuation onto the subject. */
export function isGlued(subject: string, text: string): boolean {
  if (!text.startsWith(subject) || !needsWordBoundary(subject)) return false;
  const continuation = text.slice(subject.length);
  return continuation.length > 0 && !startsNewWord(continuation);
}

async function evaluateArm(arm: EvalArm, options: PromptEvalOptions): Promise<ArmReport> {
  const concepts: ConceptResult[] = [];
  const lengths: number[] = [];
  const similarities: number[] = [];
  let complete = 0;
  let kept = 0;
  let glued = 0;
  let fragments = 0;
  let explicit = 0;
  let elapsed = 0;
  // Concepts share one seed: concept order cannot change a concept's prompts.
  for (const concept of options.concepts) {
    const started = performance.now();
    const prompts = await arm.generator.generate({
      subject: concept,
      count: options.count,
      seed: options.seed,
      maxNewTokens: options.maxNewTokens,
    });
    elapsed += performance.now() - started;
    const continuations: string[] = [];
    for (const prompt of prompts) {
      if (prompt.complete) complete += 1;
      const keepsSubject = prompt.text.startsWith(concept);
      if (keepsSubject) kept += 1;
      if (isGlued(concept, prompt.text)) glued += 1;
      if (findTagFragment(prompt.text, arm.tags) >= 0) fragments += 1;
      if (options.filter.check(prompt.text).blocked) explicit += 1;
      lengths.push(encodeText(prompt.text).length);
      continuations.push(keepsSubject ? prompt.text.slice(concept.length) : prompt.text);
    }
    if (options.similarity) {
      similarities.push(
        ...(await options.similarity.score(
          concept,
          prompts.map((p) => p.text),
        )),
      );
    }
    concepts.push({
      concept,
      distinct1: distinctN(continuations, 1),
      distinct2: distinctN(continuations, 2),
      prompts: prompts.map(({ text, complete, tokens }) => ({ text, complete, tokens })),
    });
  }
  const total = lengths.length;
  return {
    arm: arm.name,
    prompts: total,
    complete: total === 0 ? 0 : complete / total,
    subjectKept: total === 0 ? 0 : kept / total,
    glued,
    tagFragments: fragments,
    explicit,
    distinct1: mean(concepts.map((c) => c.distinct1)),
    distinct2: mean(concepts.map((c) => c.distinct2)),
    meanTokens: mean(lengths),
    p90Tokens: p90(lengths),
    cap: options.maxNewTokens ?? arm.cap,
    trainingMeanTokens: arm.trainingMeanTokens,
    msPerPrompt: total === 0 ? 0 : elapsed / total,
    similarity: options.similarity ? mean(similarities) : null,
    similarityScorer: options.similarity?.name ?? null,
    concepts,
  };
}

/** Runs every arm over every concept; arms run one after another so timings do not mix. */
export async function evaluatePrompts(
  arms: readonly EvalArm[],
  options: PromptEvalOptions,
): Promise<PromptEvalReport> {
  if (options.concepts.length === 0) throw new RangeError("no concepts to evaluate");
  if (!Number.isInteger(options.count) || options.count < 1)
    throw new RangeError(`count must be a whole number ≥ 1, got ${options.count}`);
  const reports: ArmReport[] = [];
  for (const arm of arms) reports.push(await evaluateArm(arm, options));
  return {
    seed: options.seed,
    count: options.count,
    concepts: [...options.concepts],
    arms: reports,
  };
}

const percent = (share: number) => `${(share * 100).toFixed(0)}%`;

/** A fixed-width table, one row per arm. */
export function formatEvalTable(report: PromptEvalReport): string {
  const header = [
    "arm",
    "prompts",
    "complete",
    "subject",
    "glued",
    "tags",
    "explicit",
    "distinct-1",
    "distinct-2",
    "mean tok",
    "p90 tok",
    "cap",
    "train mean",
    "ms/prompt",
    "similarity",
  ];
  const rows = report.arms.map((arm) => [
    arm.arm,
    String(arm.prompts),
    percent(arm.complete),
    percent(arm.subjectKept),
    String(arm.glued),
    String(arm.tagFragments),
    String(arm.explicit),
    arm.distinct1.toFixed(2),
    arm.distinct2.toFixed(2),
    arm.meanTokens.toFixed(1),
    String(arm.p90Tokens),
    arm.cap === null ? "-" : String(arm.cap),
    arm.trainingMeanTokens === null ? "-" : arm.trainingMeanTokens.toFixed(1),
    arm.msPerPrompt.toFixed(1),
    arm.similarity === null ? "-" : arm.similarity.toFixed(3),
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) =>
        i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number),
      )
      .join("  ");
  return [
    `# ${report.concepts.length} concepts × ${report.count} prompts, seed ${report.seed}`,
    line(header),
    ...rows.map(line),
  ].join("\n");
}

/** Tags every arm is checked against, whatever its own: the paper's start and end tags. */
const STANDARD_TAGS = { start: "<|startoftext|>", end: "<|endoftext|>" };

/**
 * An arm for the harness from a generator: local ONNX models report their cap, training
 * caption length and tags; other generators (remote arms) only their name.
 */
export function evalArm(name: string, generator: PromptGenerator): EvalArm {
  const standard = tagTexts(STANDARD_TAGS);
  if (generator instanceof OnnxPromptGenerator) {
    return {
      name,
      generator,
      cap: generator.defaultMaxNewTokens,
      trainingMeanTokens: generator.metadata.meanCaptionTokens,
      tags: [...new Set([...generator.tags, ...standard])],
    };
  }
  return { name, generator, cap: null, trainingMeanTokens: null, tags: standard };
}
