/**
 * Sampler cost per row per decoding step over GPT-2's 50,257 logits. It runs between ONNX
 * steps, so the bound is a share of a decode step: at most 5% of a GPT-2-small step at batch 1
 * (about 50 ms on 2 cores → 2.5 ms per row).
 *
 *   npx tsx bench/sampler.ts
 */
import { tagTexts, tokenMasks } from "../src/core/prompt/cleanOutput.js";
import { TokenSampler } from "../src/core/prompt/sampler.js";
import { seededRandom } from "../src/core/random.js";
import type { SamplingSettings } from "../src/core/types.js";

const VOCAB = 50257;
const BOUND_MS = 2.5;
const ROUNDS = 400;

// Two shapes of logits: peaked like a trained model's (a few strong candidates over a long
// tail), and flat Gumbel noise, the worst case for top-p alone (a nucleus of thousands).
const random = seededRandom(3);
const gumbel = () => -Math.log(-Math.log(random.next() + 1e-12));
const shapes: Record<string, Float32Array[]> = {
  peaked: Array.from({ length: 8 }, () =>
    Float32Array.from(
      { length: VOCAB },
      (_, i) => gumbel() - 6 * Math.log1p(((i * 7919) % VOCAB) / 50),
    ),
  ),
  flat: Array.from({ length: 8 }, () => Float32Array.from({ length: VOCAB }, () => 1.5 * gumbel())),
};
const seen = new Set(Array.from({ length: 30 }, (_, i) => i * 997));

const configurations: [string, SamplingSettings][] = [
  [
    "default (T 0.9, top-k 50, top-p 0.95, rep 1.2)",
    { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 },
  ],
  ["top-p 0.95 only", { temperature: 1, topK: 0, topP: 0.95, repetitionPenalty: 1 }],
  ["greedy", { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.2 }],
  ["no cuts (full softmax)", { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }],
];

for (const [shape, rows] of Object.entries(shapes)) {
  for (const [name, settings] of configurations) {
    const sampler = new TokenSampler(VOCAB, settings, seededRandom(1));
    for (let i = 0; i < 20; i++) sampler.sample(rows[i % rows.length] as Float32Array, seen);
    const start = performance.now();
    for (let i = 0; i < ROUNDS; i++) sampler.sample(rows[i % rows.length] as Float32Array, seen);
    const ms = (performance.now() - start) / ROUNDS;
    console.log(
      `${`${shape} logits, ${name}`.padEnd(62)} ${ms.toFixed(3)} ms/row-step  ${(1000 / ms).toFixed(0).padStart(6)} samples/s  (bound ≤ ${BOUND_MS} ms) ${ms <= BOUND_MS ? "ok" : "OVER"}`,
    );
  }
}

// The clean-output masks (src/core/prompt/cleanOutput.ts): the default sampling with the
// first-step word-boundary mask, the mask every step pays, and their one-time construction.
const maskStart = performance.now();
const masks = tokenMasks(tagTexts({ start: "<|startoftext|>", end: "<|endoftext|>" }), [50256]);
console.log(
  `${"building the token masks (once per process)".padEnd(62)} ${(performance.now() - maskStart).toFixed(1)} ms`,
);
for (const [maskName, allowed] of [
  ["first-step word-boundary mask", masks.firstWord],
  ["every-step tag mask", masks.always],
] as const) {
  const settings = configurations[0]?.[1] as SamplingSettings;
  const sampler = new TokenSampler(VOCAB, settings, seededRandom(1));
  const rows = shapes.peaked as Float32Array[];
  for (let i = 0; i < 20; i++)
    sampler.sample(rows[i % rows.length] as Float32Array, seen, { allowed });
  const start = performance.now();
  for (let i = 0; i < ROUNDS; i++)
    sampler.sample(rows[i % rows.length] as Float32Array, seen, { allowed });
  const ms = (performance.now() - start) / ROUNDS;
  console.log(
    `${`peaked logits, default + ${maskName}`.padEnd(62)} ${ms.toFixed(3)} ms/row-step  (bound ≤ ${BOUND_MS} ms) ${ms <= BOUND_MS ? "ok" : "OVER"}`,
  );
}
