/**
 * Next-token selection from one row of logits: repetition penalty → temperature → top-k →
 * top-p → a draw from the seeded random source (the order Hugging Face's generate applies).
 * The scratch buffers are reused across steps: this runs once per row per decoding step.
 */
import type { RandomSource } from "../random.js";
import type { SamplingSettings } from "../types.js";

/** Candidates kept before falling back to a full sort when top-p alone limits the choice. */
const TOP_P_FIRST_PASS = 256;

export class TokenSampler {
  private readonly scores: Float32Array;
  private readonly order: Int32Array;
  /** The random source of the draw in progress. */
  private current: RandomSource;

  constructor(
    private readonly vocabSize: number,
    private readonly settings: SamplingSettings,
    private readonly random: RandomSource,
  ) {
    this.scores = new Float32Array(vocabSize);
    this.order = new Int32Array(vocabSize);
    this.current = random;
  }

  /**
   * Picks the next token id.
   * @param logits this row's logits (length ≥ vocabSize; extra entries are padding and ignored)
   * @param seen token ids already in the sequence, for the repetition penalty
   * @param options.allowed 1 for every token that may be drawn, 0 for masked ones (never drawn)
   * @param options.random this row's own random source, instead of the sampler's
   */
  sample(
    logits: Float32Array,
    seen: ReadonlySet<number>,
    options: { allowed?: Uint8Array; random?: RandomSource } = {},
  ): number {
    const { temperature, topK, topP, repetitionPenalty } = this.settings;
    const scores = this.scores;
    scores.set(logits.subarray(0, this.vocabSize));
    const { allowed } = options;
    if (allowed) {
      for (let id = 0; id < scores.length; id++) if (allowed[id] === 0) scores[id] = -Infinity;
    }
    this.current = options.random ?? this.random;
    if (repetitionPenalty !== 1) {
      for (const id of seen) {
        const value = scores[id] as number;
        scores[id] = value > 0 ? value / repetitionPenalty : value * repetitionPenalty;
      }
    }
    if (temperature === 0) return argmax(scores);

    const vocab = this.vocabSize;
    if (topK > 0 && topK < vocab) {
      // Top-k (then top-p within it): a size-k heap, candidates ordered best first.
      const count = topCandidates(scores, topK, this.order);
      const weights = softmaxWeights(scores, this.order, count, temperature);
      const kept = topP < 1 ? nucleusSize(weights, sum(weights), topP) : 0;
      return this.draw(weights, kept === 0 ? count : kept);
    }
    if (topP >= 1) return this.drawFromAll(temperature);

    // Top-p alone. The nucleus almost always lies in the top few hundred tokens: look there
    // first, and only when it does not, find the score threshold with one native sort.
    const total = sumExp(scores, argmaxValue(scores), temperature);
    const count = topCandidates(scores, TOP_P_FIRST_PASS, this.order);
    const weights = softmaxWeights(scores, this.order, count, temperature, argmaxValue(scores));
    const kept = nucleusSize(weights, total, topP);
    if (kept > 0) return this.draw(weights, kept);
    return this.drawAboveThreshold(nucleusThreshold(scores, total, topP, temperature), temperature);
  }

  /** A draw from the whole softmax, in id order: no sort needed. */
  private drawFromAll(temperature: number): number {
    const scores = this.scores;
    const max = argmaxValue(scores);
    const total = sumExp(scores, max, temperature);
    let target = this.current.next() * total;
    for (let id = 0; id < scores.length; id++) {
      target -= Math.exp(((scores[id] as number) - max) / temperature);
      if (target < 0) return id;
    }
    return argmax(scores);
  }

  /** A draw among the tokens scoring at least `threshold` (ties included), in id order. */
  private drawAboveThreshold(threshold: number, temperature: number): number {
    const scores = this.scores;
    const max = argmaxValue(scores);
    let count = 0;
    for (let id = 0; id < scores.length; id++) {
      if ((scores[id] as number) >= threshold) this.order[count++] = id;
    }
    const weights = softmaxWeights(scores, this.order, count, temperature, max);
    return this.draw(weights, count);
  }

  private draw(weights: Float64Array, count: number): number {
    let total = 0;
    for (let i = 0; i < count; i++) total += weights[i] as number;
    let target = this.current.next() * total;
    for (let i = 0; i < count; i++) {
      target -= weights[i] as number;
      if (target < 0) return this.order[i] as number;
    }
    return this.order[count - 1] as number;
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  let bestValue = values[0] as number;
  for (let i = 1; i < values.length; i++) {
    const value = values[i] as number;
    if (value > bestValue) {
      bestValue = value;
      best = i;
    }
  }
  return best;
}

/**
 * Writes the ids of the k highest scores into order[0..k), highest first (ties: lower id first,
 * so results never depend on sort stability). Uses a size-k min-heap: O(V log k).
 */
export function topCandidates(scores: Float32Array, k: number, order: Int32Array): number {
  const n = Math.min(k, scores.length);
  const heap = order; // heap[0..size) holds ids; root is the weakest kept candidate
  let size = 0;
  const weaker = (a: number, b: number): boolean => {
    const sa = scores[a] as number;
    const sb = scores[b] as number;
    return sa < sb || (sa === sb && a > b);
  };
  const siftDown = (start: number): void => {
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < size && weaker(heap[left] as number, heap[smallest] as number)) smallest = left;
      if (right < size && weaker(heap[right] as number, heap[smallest] as number)) smallest = right;
      if (smallest === i) return;
      const tmp = heap[i] as number;
      heap[i] = heap[smallest] as number;
      heap[smallest] = tmp;
      i = smallest;
    }
  };
  for (let id = 0; id < scores.length; id++) {
    if (size < n) {
      heap[size] = id;
      size += 1;
      let i = size - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!weaker(heap[i] as number, heap[parent] as number)) break;
        const tmp = heap[i] as number;
        heap[i] = heap[parent] as number;
        heap[parent] = tmp;
        i = parent;
      }
    } else if (weaker(heap[0] as number, id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  const sorted = Array.from(heap.subarray(0, size)).sort((a, b) =>
    weaker(a, b) ? 1 : weaker(b, a) ? -1 : 0,
  );
  heap.set(sorted);
  return size;
}

/** Unnormalised softmax weights of the candidates at the given temperature, in order. */
function softmaxWeights(
  scores: Float32Array,
  order: Int32Array,
  count: number,
  temperature: number,
  max: number = scores[order[0] as number] as number,
): Float64Array {
  const weights = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    weights[i] = Math.exp(((scores[order[i] as number] as number) - max) / temperature);
  }
  return weights;
}

function sum(weights: Float64Array): number {
  let total = 0;
  for (const w of weights) total += w;
  return total;
}

function argmaxValue(values: Float32Array): number {
  return values[argmax(values)] as number;
}

/**
 * The lowest score inside the top-p nucleus: scores sorted once (a native typed-array sort),
 * then walked from the top until their softmax mass reaches topP.
 */
function nucleusThreshold(
  scores: Float32Array,
  total: number,
  topP: number,
  temperature: number,
): number {
  const sorted = Float32Array.from(scores).sort();
  const max = sorted[sorted.length - 1] as number;
  let running = 0;
  for (let i = sorted.length - 1; i >= 0; i--) {
    running += Math.exp(((sorted[i] as number) - max) / temperature);
    if (running / total >= topP) return sorted[i] as number;
  }
  return sorted[0] as number;
}

/** The softmax normaliser over the whole vocabulary, on the same scale as softmaxWeights. */
function sumExp(scores: Float32Array, max: number, temperature: number): number {
  let total = 0;
  for (let i = 0; i < scores.length; i++)
    total += Math.exp(((scores[i] as number) - max) / temperature);
  return total;
}

/**
 * Smallest prefix of the descending weights whose share of `total` reaches topP (at least one
 * token), or 0 when these weights do not reach it.
 */
function nucleusSize(weights: Float64Array, total: number, topP: number): number {
  let running = 0;
  for (let i = 0; i < weights.length; i++) {
    running += weights[i] as number;
    if (running / total >= topP) return i + 1;
  }
  return 0;
}
