import { expect } from "vitest";
import type { KeyvVoteStore } from "../../src/core/votes/store.js";

/**
 * Claims through their expiry on a store whose clock `advance` moves: a claim holds until its
 * time is up, then can be taken again; 256 claims in all bring a purge of what expired by then
 * (the caller checks the backend's rows afterwards).
 */
export async function claimThroughExpiry(
  store: KeyvVoteStore,
  advance: (ms: number) => void,
): Promise<void> {
  expect(await store.claimOnce("old", 1_000)).toBe(true);
  expect(await store.claimOnce("long", 3_600_000)).toBe(true);
  advance(999);
  expect(await store.claimOnce("old", 1_000)).toBe(false);
  advance(1);
  expect(await store.claimOnce("old", 1_000)).toBe(true);
  advance(5_000);
  // 256 claims in all (2 + 2 so far) bring a purge of what expired by then.
  for (let i = 0; i < 252; i++) {
    advance(1);
    expect(await store.claimOnce(`event-${i}`, 1)).toBe(true);
  }
}
