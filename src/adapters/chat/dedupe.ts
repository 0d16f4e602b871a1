/**
 * Events a platform may deliver twice (Slack retries an event it did not see acknowledged in
 * 3 s, with the same event_id). The flow asks SeenEvents before acting; an implementation that
 * persists ids (so that a restart does not count a replay twice) fits the same interface.
 */
import type { VoteStore } from "../../core/types.js";

export interface SeenEvents {
  /** True the first time an id is seen, false for every later time. */
  firstTime(id: string): boolean | Promise<boolean>;
}

/** A bounded in-memory SeenEvents that forgets its oldest ids. */
export class RecentIds implements SeenEvents {
  private readonly ids = new Set<string>();

  constructor(private readonly size: number) {}

  firstTime(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.size) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }
}

/**
 * A SeenEvents kept in the vote store (VoteStore.claimOnce): it survives a restart and is
 * shared by every process on that store. Ids are remembered for `ttlMs`, which must outlast
 * the platform's redeliveries (Slack retries within about an hour).
 */
export class StoredIds implements SeenEvents {
  constructor(
    private readonly store: VoteStore,
    /** Keeps kinds of ids apart in the store ("slack-event:", "slack-request:"). */
    private readonly prefix: string,
    private readonly ttlMs: number,
  ) {
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) {
      throw new Error(`StoredIds: ttlMs must be a positive whole number, got ${ttlMs}`);
    }
  }

  firstTime(id: string): Promise<boolean> {
    return this.store.claimOnce(`${this.prefix}${id}`, this.ttlMs);
  }
}
