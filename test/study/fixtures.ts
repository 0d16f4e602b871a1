/** Records for the study tests. */
import type { Generation } from "../../src/core/types.js";

export function generation(id: string, arm: string, studyId?: string): Generation {
  return {
    id,
    createdAt: "2025-01-01T00:00:00.000Z",
    platform: "discord",
    channel: "c1",
    requester: "u0",
    subject: "a lighthouse",
    arm,
    prompt: "a lighthouse at dusk",
    promptComplete: true,
    seed: 1,
    image: {
      backend: "fake",
      model: "fake",
      width: 64,
      height: 64,
      steps: 1,
      guidance: 7,
      path: `images/${id}.png`,
    },
    timings: { queuedMs: 0, promptMs: 0, renderMs: 0, totalMs: 0 },
    ...(studyId === undefined ? {} : { studyId }),
  };
}

/** The value, or a failed test when it is missing. */
export function must<T>(value: T | undefined | null): T {
  if (value === undefined || value === null) throw new Error("expected a value");
  return value;
}
