import { describe, expect, it } from "vitest";
import { argmax, TokenSampler, topCandidates } from "../../src/core/prompt/sampler.js";
import { seededRandom } from "../../src/core/random.js";
import type { SamplingSettings } from "../../src/core/types.js";

const plain: SamplingSettings = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 };

function draws(logits: number[], settings: SamplingSettings, n: number, seen = new Set<number>()) {
  const sampler = new TokenSampler(logits.length, settings, seededRandom(7));
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) {
    const id = sampler.sample(Float32Array.from(logits), seen);
    counts[id] = (counts[id] as number) + 1;
  }
  return counts;
}

describe("seeded random source", () => {
  it("repeats for the same seed and differs between seeds", () => {
    const a = seededRandom(1);
    const b = seededRandom(1);
    const c = seededRandom(2);
    const seqA = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(seqA);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(seqA);
    for (const x of seqA) expect(x >= 0 && x < 1).toBe(true);
  });
});

describe("TokenSampler", () => {
  it("is greedy at temperature 0", () => {
    const counts = draws([0.1, 3, 2.9, -1], { ...plain, temperature: 0 }, 20);
    expect(counts).toEqual([0, 20, 0, 0]);
  });

  it("follows the softmax distribution without cuts", () => {
    const logits = [Math.log(1), Math.log(2), Math.log(7)];
    const counts = draws(logits, plain, 20000);
    expect(counts[0] as number).toBeGreaterThan(1700);
    expect(counts[0] as number).toBeLessThan(2300);
    expect(counts[2] as number).toBeGreaterThan(13600);
    expect(counts[2] as number).toBeLessThan(14400);
  });

  it("never leaves the top k", () => {
    const counts = draws([5, 4.9, 4.8, 4.7, 0, 0], { ...plain, topK: 2 }, 2000);
    expect(counts.slice(2).every((c) => c === 0)).toBe(true);
    expect(counts[0] as number).toBeGreaterThan(0);
    expect(counts[1] as number).toBeGreaterThan(0);
  });

  it("keeps the smallest nucleus reaching top p", () => {
    // probabilities 0.5, 0.3, 0.15, 0.05: p = 0.8 keeps exactly the first two.
    const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
    const counts = draws(logits, { ...plain, topP: 0.8 }, 2000);
    expect(counts[2]).toBe(0);
    expect(counts[3]).toBe(0);
    expect((counts[0] as number) + (counts[1] as number)).toBe(2000);
  });

  it("finds a nucleus beyond the first pass over a large vocabulary", () => {
    // A nearly flat vocabulary of 1000: the nucleus at p = 0.9 is far more than the first pass.
    const logits = Array.from({ length: 1000 }, (_, i) => -0.001 * i);
    const weights = logits.map(Math.exp);
    const total = weights.reduce((a, b) => a + b, 0);
    let nucleus = 0;
    for (let mass = 0; mass / total < 0.9; nucleus++) mass += weights[nucleus] as number;
    const counts = draws(logits, { ...plain, topP: 0.9 }, 5000);
    const used = counts.flatMap((c, id) => (c > 0 ? [id] : []));
    expect(nucleus).toBeGreaterThan(800);
    expect(Math.max(...used)).toBeLessThan(nucleus);
    expect(used.length).toBeGreaterThan(nucleus - 60);
  });

  it("draws from the whole vocabulary in proportion when nothing is cut", () => {
    const logits = Array.from({ length: 3000 }, (_, i) => (i === 2999 ? 8 : 0));
    const counts = draws(logits, plain, 4000);
    // P(last) = e^8 / (e^8 + 2999) ≈ 0.4985
    expect(counts[2999] as number).toBeGreaterThan(1850);
    expect(counts[2999] as number).toBeLessThan(2150);
  });

  it("penalises tokens already seen", () => {
    const greedy = { ...plain, temperature: 0, repetitionPenalty: 2 };
    // 2.0 / 2 = 1.0 < 1.5: the seen token loses its lead.
    expect(draws([2, 1.5], greedy, 1, new Set([0]))).toEqual([0, 1]);
    // Negative logits are multiplied: -0.5 * 2 = -1 < -0.8.
    expect(draws([-0.5, -0.8], greedy, 1, new Set([0]))).toEqual([0, 1]);
  });

  it("gives the same draws for the same seed", () => {
    const logits = Array.from({ length: 500 }, (_, i) => Math.sin(i));
    const settings = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
    expect(draws(logits, settings, 200)).toEqual(draws(logits, settings, 200));
  });
});

describe("topCandidates", () => {
  it("returns the k best ids, best first, ties by lower id", () => {
    const order = new Int32Array(8);
    const n = topCandidates(Float32Array.from([1, 5, 3, 5, -2, 4]), 3, order);
    expect(n).toBe(3);
    expect(Array.from(order.subarray(0, 3))).toEqual([1, 3, 5]);
  });

  it("argmax picks the first maximum", () => {
    expect(argmax(Float32Array.from([1, 9, 9, 2]))).toBe(1);
  });
});
