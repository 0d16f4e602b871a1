/**
 * For reconciliation tests and drills: how the stored votes of posted messages compare with the
 * reactions visible on them. Per (rater, dimension): "lost" when a reaction is visible and no
 * vote is stored, "ghost" when a vote is stored and no reaction of that dimension is visible,
 * "stale" when the stored score is not among the visible ones.
 */
import { reactionVote } from "../../src/adapters/chat/votes.js";
import type { Config } from "../../src/core/config.js";
import type { Generation, VoteStore } from "../../src/core/types.js";

export interface VisibleMessage {
  /** As given to setMessageRef. */
  ref: string;
  /** People's reactions (the bot's own left out), users as bare platform ids. */
  reactions: { emoji: string; users: readonly string[] }[];
}

export interface VoteComparison {
  /** (rater, dimension) slots with a visible voting reaction. */
  visible: number;
  /** Votes stored for those messages. */
  stored: number;
  lost: string[];
  stale: string[];
  ghost: string[];
}

export async function compareVotes(
  store: VoteStore,
  platform: "discord" | "slack",
  scale: Config["votes"]["discordEmoji"],
  messages: readonly VisibleMessage[],
): Promise<VoteComparison> {
  const result: VoteComparison = { visible: 0, stored: 0, lost: [], stale: [], ghost: [] };
  for (const message of messages) {
    const generation = await store.findGenerationByMessage(platform, message.ref);
    if (!generation) throw new Error(`no generation posted as ${message.ref}`);
    const visible = new Map<string, Set<number>>();
    for (const reaction of message.reactions) {
      const vote = reactionVote(reaction.emoji, scale, platform);
      if (!vote) continue;
      for (const user of reaction.users) {
        const key = `${message.ref} ${platform}:${user} ${vote.dimension}`;
        visible.set(key, (visible.get(key) ?? new Set()).add(vote.score));
      }
    }
    result.visible += visible.size;
    const stored = await store.votesOf(generation.id);
    result.stored += stored.length;
    const storedKeys = new Set<string>();
    for (const vote of stored) {
      const key = `${message.ref} ${vote.rater} ${vote.dimension}`;
      storedKeys.add(key);
      const scores = visible.get(key);
      if (scores === undefined) result.ghost.push(`${key} ${vote.score}`);
      else if (!scores.has(vote.score)) result.stale.push(`${key} ${vote.score}`);
    }
    for (const key of visible.keys()) if (!storedKeys.has(key)) result.lost.push(key);
  }
  return result;
}

/** A generation as the pipeline saves it, for messages a test posts itself. */
export function testGeneration(
  id: string,
  platform: "discord" | "slack",
  index: number,
): Generation {
  return {
    id,
    createdAt: new Date().toISOString(),
    platform,
    requester: `${platform}:1`,
    subject: "a lighthouse",
    arm: "ft-tags",
    prompt: "a lighthouse on a cliff at sunset, oil painting",
    promptComplete: true,
    seed: index,
    image: {
      backend: "test",
      model: "sd2",
      width: 768,
      height: 768,
      steps: 30,
      guidance: 7.5,
      path: "x.png",
    },
    timings: { queuedMs: 0, promptMs: 0, renderMs: 0, totalMs: 0 },
  };
}

/** Saves a generation and records it as posted as `ref` (what the flow's publish does). */
export async function seedPosted(
  store: VoteStore,
  platform: "discord" | "slack",
  ref: string,
  index: number,
): Promise<Generation> {
  const generation = testGeneration(`g-${platform}-${index}`, platform, index);
  await store.saveGeneration(generation);
  await store.setMessageRef(generation.id, ref);
  return generation;
}
