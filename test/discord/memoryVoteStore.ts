/**
 * A small in-memory VoteStore for the adapter tests (the real stores live in src/core/votes).
 * Follows the contract in src/core/types.ts: one current vote per (generation, rater,
 * dimension); retract only when the given score is the current one; every change logged.
 */
import type { Generation, Vote, VoteEvent, VoteStore } from "../../src/core/types.js";

export class MemoryVoteStore implements VoteStore {
  readonly generations = new Map<string, Generation>();
  private readonly votes = new Map<string, Vote>();
  private readonly log: VoteEvent[] = [];
  closed = false;

  async saveGeneration(generation: Generation): Promise<void> {
    this.generations.set(generation.id, structuredClone(generation));
  }

  async getGeneration(id: string): Promise<Generation | undefined> {
    return this.generations.get(id);
  }

  async findGenerationByMessage(
    platform: string,
    messageRef: string,
  ): Promise<Generation | undefined> {
    for (const generation of this.generations.values()) {
      if (generation.platform === platform && generation.messageRef === messageRef)
        return generation;
    }
    return undefined;
  }

  async setMessageRef(generationId: string, messageRef: string): Promise<void> {
    const generation = this.generations.get(generationId);
    if (!generation) throw new Error(`unknown generation ${generationId}`);
    generation.messageRef = messageRef;
  }

  async castVote(vote: Omit<Vote, "at">): Promise<VoteEvent> {
    const key = `${vote.generationId}|${vote.rater}|${vote.dimension}`;
    const at = new Date().toISOString();
    const previous = this.votes.get(key);
    this.votes.set(key, { ...vote, at });
    const event: VoteEvent = previous
      ? { kind: "replace", ...vote, previous: previous.score, at }
      : { kind: "add", ...vote, at };
    this.log.push(event);
    return event;
  }

  async retractVote(vote: Omit<Vote, "at">): Promise<VoteEvent | undefined> {
    const key = `${vote.generationId}|${vote.rater}|${vote.dimension}`;
    const current = this.votes.get(key);
    if (!current || current.score !== vote.score) return undefined;
    this.votes.delete(key);
    const event: VoteEvent = { kind: "retract", ...vote, at: new Date().toISOString() };
    this.log.push(event);
    return event;
  }

  async votesOf(generationId: string): Promise<Vote[]> {
    return [...this.votes.values()].filter((vote) => vote.generationId === generationId);
  }

  async *studyVotes(studyId: string): AsyncIterable<Vote & { arm: string }> {
    for (const vote of this.votes.values()) {
      const generation = this.generations.get(vote.generationId);
      if (generation?.studyId === studyId) yield { ...vote, arm: generation.arm };
    }
  }

  async *events(): AsyncIterable<VoteEvent> {
    yield* this.log;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
