/**
 * Blind, balanced arm assignment for live studies: permuted blocks.
 *
 * The assignments are cut into blocks of one of each arm. Block b is the list of arms shuffled
 * (Fisher–Yates) with random numbers from HMAC-SHA256(secret, "block:b:round"), where `secret` is
 * 32 bytes from the operating system's CSPRNG, made when the study starts and kept only in the
 * server-side study record. The n-th assignment (from 0) is block ⌊n/k⌋, position n mod k.
 *
 * - Balance: after any number of assignments, the counts per arm differ by at most one (every
 *   completed block adds one to each arm; the current block adds at most one more).
 * - Blindness: without the secret, the order of each block is unpredictable — the first arm is
 *   uniform over the arms, and successive blocks are independent permutations (no round-robin,
 *   no period). Only the counter n needs persisting: a restart recomputes the same block and
 *   carries on where it stopped, so balance survives restarts.
 * - The block structure itself is the price of balance: someone who knew the arms of the first
 *   k − 1 images of a block could infer the k-th. The arms are never shown while a study runs,
 *   so nobody does.
 */
import { createHmac } from "node:crypto";

/** The arm for assignment number `n` (0-based) of a study with this secret and these arms. */
export function armForAssignment(secret: string, arms: readonly string[], n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`n must be ≥ 0, got ${n}`);
  const k = arms.length;
  if (k === 0) throw new RangeError("no arms");
  return blockOrder(secret, arms, Math.floor(n / k))[n % k] as string;
}

/** Block `block` (0-based): the arms in the order that block assigns them. */
export function blockOrder(secret: string, arms: readonly string[], block: number): string[] {
  const order = [...arms];
  const next = uint32Stream(secret, `block:${block}`);
  for (let i = order.length - 1; i > 0; i--) {
    const j = randomBelow(i + 1, next);
    const picked = order[j] as string;
    order[j] = order[i] as string;
    order[i] = picked;
  }
  return order;
}

/** Counts per arm after `n` assignments (each arm's count differs from the others' by ≤ 1). */
export function countsAfter(
  secret: string,
  arms: readonly string[],
  n: number,
): Record<string, number> {
  const k = arms.length;
  const full = Math.floor(n / k);
  const counts = Object.fromEntries(arms.map((arm) => [arm, full]));
  for (const arm of blockOrder(secret, arms, full).slice(0, n % k)) {
    counts[arm] = (counts[arm] as number) + 1;
  }
  return counts;
}

/** 32-bit values from HMAC-SHA256(secret, label:round), 8 per round, as many rounds as needed. */
function uint32Stream(secret: string, label: string): () => number {
  let round = 0;
  let digest = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset + 4 > digest.length) {
      digest = createHmac("sha256", Buffer.from(secret, "hex"))
        .update(`${label}:${round++}`)
        .digest();
      offset = 0;
    }
    const value = digest.readUInt32BE(offset);
    offset += 4;
    return value;
  };
}

/** A uniform integer in [0, n) by rejection sampling (no modulo bias). */
function randomBelow(n: number, next: () => number): number {
  const limit = Math.floor(2 ** 32 / n) * n;
  for (;;) {
    const value = next();
    if (value < limit) return value % n;
  }
}
