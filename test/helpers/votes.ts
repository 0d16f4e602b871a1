import type { Generation } from "../../src/core/types.js";
import { type KeyvVoteStore, openVoteStore } from "../../src/core/votes/index.js";

/**
 * The core's in-memory vote store: the same code paths as SQLite, Redis and PostgreSQL.
 * `now` fixes the timestamps (e.g. a clock that ticks a second per call) for exact assertions.
 */
export function memoryVoteStore(now?: () => Date): Promise<KeyvVoteStore> {
  return openVoteStore("memory://", { dataDir: "/nonexistent/unused-by-memory-store", now });
}

/** A clock that starts at 2025-01-01T00:00:00Z and moves one second per reading. */
export function tickingClock(): () => Date {
  let tick = 0;
  return () => new Date(Date.UTC(2025, 0, 1) + 1000 * tick++);
}

/** Every generation in the store, in key order. */
export async function allGenerations(store: KeyvVoteStore): Promise<Generation[]> {
  const generations: Generation[] = [];
  for await (const generation of store.generations()) generations.push(generation);
  return generations;
}
