import type { Generation } from "../../src/core/types.js";

/** A generation record as the benchmarks store them: one image of one subject, fields overridable. */
export function benchGeneration(id: string, fields: Partial<Generation> = {}): Generation {
  return {
    id,
    createdAt: new Date().toISOString(),
    platform: "discord",
    requester: "discord:1",
    subject: "a lighthouse",
    arm: "ft-tags",
    prompt: "a lighthouse on a cliff at sunset, oil painting",
    promptComplete: true,
    seed: 1,
    image: {
      backend: "bench",
      model: "sd2",
      width: 768,
      height: 768,
      steps: 30,
      guidance: 7.5,
      path: "x.png",
    },
    timings: { queuedMs: 0, promptMs: 0, renderMs: 0, totalMs: 0 },
    ...fields,
  };
}
