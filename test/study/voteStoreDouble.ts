/** A small in-memory VoteStore for the study tests: the contract of src/core/types.ts, no more. */
import type { Generation, Vote, VoteEvent, VoteStore } from "../../src/core/types.js";

export class MemoryVoteStore implements VoteStore {
  readonly generations = new Map<string, Generation>();
  private readonly current = new Map<string, Vote>();
  private readonly log: VoteEvent[] = [];
  private tick = 0;

  private now(): string {
    return new Date(Date.UTC(2025, 0, 1) + 1000 * this.tick++).toISOString();
  }

  async saveGeneration(generation: Generation): Promise<void> {
    this.generations.set(generation.id, structuredClone(generation));
  }
  async getGeneration(id: string): Promise<Generation | undefined> {
    return this.generations.get(id);
  }
  async findGenerationByMessage(platform: string, messageRef: string) {
    return [...this.generations.values()].find(
      (g) => g.platform === platform && g.messageRef === messageRef,
    );
  }
  async setMessageRef(generationId: string, messageRef: string): Promise<void> {
    const generation = this.generations.get(generationId);
    if (generation) generation.messageRef = messageRef;
  }
  async castVote(vote: Omit<Vote, "at">): Promise<VoteEvent> {
    const key = `${vote.generationId}|${vote.rater}|${vote.dimension}`;
    const at = this.now();
    const previous = this.current.get(key);
    this.current.set(key, { ...vote, at });
    const event: VoteEvent = previous
      ? { kind: "replace", ...vote, previous: previous.score, at }
      : { kind: "add", ...vote, at };
    this.log.push(event);
    return event;
  }
  async retractVote(vote: Omit<Vote, "at">): Promise<VoteEvent | undefined> {
    const key = `${vote.generationId}|${vote.rater}|${vote.dimension}`;
    if (this.current.get(key)?.score !== vote.score) return undefined;
    this.current.delete(key);
    const event: VoteEvent = { kind: "retract", ...vote, at: this.now() };
    this.log.push(event);
    return event;
  }
  async votesOf(generationId: string): Promise<Vote[]> {
    return [...this.current.values()].filter((v) => v.generationId === generationId);
  }
  async *studyVotes(studyId: string): AsyncIterable<Vote & { arm: string }> {
    for (const vote of this.current.values()) {
      const generation = this.generations.get(vote.generationId);
      if (generation?.studyId === studyId) yield { ...vote, arm: generation.arm };
    }
  }
  async *events(): AsyncIterable<VoteEvent> {
    yield* this.log;
  }
  async close(): Promise<void> {}
}

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
