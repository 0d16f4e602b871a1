/**
 * Events a platform may deliver twice (Slack retries an event it did not see acknowledged in
 * 3 s, with the same event_id). The flow asks SeenEvents before acting; an implementation that
 * persists ids (so that a restart does not count a replay twice) fits the same interface.
 */
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
