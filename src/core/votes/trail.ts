/**
 * A vote's trail: the recent changes of one (generation, rater, dimension), ordered by when they
 * happened, from which the current vote and the event log entries follow. Pure functions; the
 * store (store.ts) keeps one trail per vote and replaces it with an atomic compare-and-set, so
 * processes that apply the same rater's changes in different orders end with the same vote.
 *
 * "Latest" is the order of (at, id): `at` is when the platform says the change happened (or when
 * the store received it, without one), `id` breaks ties deterministically (the platform's event
 * id, or one the store made up). Folding the changes in that order, from `base`:
 *   - cast s: the vote becomes s (an "add" when there was none, else a "replace");
 *   - retract s: the vote is removed when it is s at that point, otherwise nothing happens (the
 *     bot removing the old reaction after a replace).
 * This is the replay rule of the event log (study/results.ts currentVotes), and log keys sort
 * by (at, id) too, so replaying the log gives the stored votes whatever order changes arrived in.
 *
 * Each change is logged once: a cast when it is applied, a retract once it removes a vote at its
 * point of the fold (possibly only later, when an earlier change arrives that makes it do so).
 * A retract that removes nothing is not logged; one that was logged stays logged, and replay
 * skips it when the vote at its point is another score. `previous` is the score before the
 * change as far as the store knew when it logged it.
 */
import type { Dimension, VoteEvent } from "../types.js";

export interface TrailChange {
  /** When it happened (ISO 8601). */
  at: string;
  /** Tie-break among changes at the same time, and their log key; unique per change. */
  id: string;
  op: "cast" | "retract";
  score: number;
  source: string;
  /** The platform's event id, when it gave one (kept in the logged event). */
  eventId?: string;
  /** Appended to the event log already. */
  logged?: true;
}

export interface VoteTrail {
  /**
   * The vote before the first change kept. Past MAX_TRAIL changes the ones before a cast are
   * dropped (the first kept change is then that cast). A redelivery of a dropped change is
   * applied again where it sorts, before that cast: the vote stays, and its log entry is
   * rewritten under the same key, so it is still there once.
   */
  base?: { score: number; at: string };
  /** Ordered by (at, id), oldest first. */
  changes: TrailChange[];
}

/**
 * Changes kept per vote (more when the last cast among the older ones is further back); the
 * rest fold into `base`. A rater rarely changes one vote this often; the trail is rewritten with
 * every change, so it is kept short.
 */
export const MAX_TRAIL = 8;

export interface TrailOutcome {
  trail: VoteTrail;
  /** The vote after every change, or undefined when there is none. */
  current: { score: number; at: string } | undefined;
  /** The change's own event; undefined for a retract that removes nothing at its point. */
  event: VoteEvent | undefined;
  /** Events to append to the log now, each with its change's id (log key). */
  newlyLogged: Array<{ at: string; id: string; event: VoteEvent }>;
  /** The change was already in the trail (a redelivery): nothing to write. */
  duplicate: boolean;
}

export interface VoteIdentity {
  generationId: string;
  rater: string;
  dimension: Dimension;
}

export function compareChanges(a: Pick<TrailChange, "at" | "id">, b: typeof a): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

/** Inserts `change` into `trail` at its place and folds; the input trail is not modified. */
export function applyChange(
  trail: VoteTrail,
  change: TrailChange,
  identity: VoteIdentity,
): TrailOutcome {
  const duplicate = trail.changes.some((known) => known.id === change.id);
  let changes = duplicate
    ? trail.changes.map((known) => ({ ...known }))
    : [...trail.changes.map((known) => ({ ...known })), { ...change }].sort(compareChanges);
  let base = trail.base;
  const events = fold(base, changes, identity);
  const newlyLogged: TrailOutcome["newlyLogged"] = [];
  if (!duplicate) {
    changes.forEach((known, i) => {
      const event = events.perChange[i];
      if (event === undefined || known.logged) return;
      known.logged = true;
      newlyLogged.push({ at: known.at, id: known.id, event });
    });
  }
  if (changes.length > MAX_TRAIL) {
    // Drop only what lies before a cast: a cast decides the vote whatever came before it, so a
    // change that arrives later and sorts before the kept ones cannot change the outcome.
    const start = lastCastAtOrBefore(changes, changes.length - MAX_TRAIL);
    if (start > 0) {
      base = events.before[start];
      changes = changes.slice(start);
    }
  }
  return {
    trail: base === undefined ? { changes } : { base, changes },
    current: events.final,
    event: events.perChange[events.ids.indexOf(change.id)],
    newlyLogged,
    duplicate,
  };
}

/** The vote a trail holds now (after all its changes), or undefined when there is none. */
export function currentOf(trail: VoteTrail): { score: number; at: string } | undefined {
  let current = trail.base;
  for (const change of trail.changes) {
    if (change.op === "cast") current = { score: change.score, at: change.at };
    else if (current?.score === change.score) current = undefined;
  }
  return current;
}

function lastCastAtOrBefore(changes: readonly TrailChange[], index: number): number {
  for (let i = index; i > 0; i--) if (changes[i]?.op === "cast") return i;
  return 0;
}

interface Fold {
  /** Each change's event (undefined: a retract that removes nothing there). */
  perChange: Array<VoteEvent | undefined>;
  ids: string[];
  /** The vote before each change. */
  before: Array<{ score: number; at: string } | undefined>;
  final: { score: number; at: string } | undefined;
}

function fold(
  base: VoteTrail["base"],
  changes: readonly TrailChange[],
  identity: VoteIdentity,
): Fold {
  let current = base;
  const perChange: Fold["perChange"] = [];
  const before: Fold["before"] = [];
  for (const change of changes) {
    before.push(current);
    if (change.op === "cast") {
      perChange.push(castEvent(identity, change, current?.score));
      current = { score: change.score, at: change.at };
    } else if (current?.score === change.score) {
      perChange.push({
        kind: "retract",
        ...identity,
        score: change.score,
        at: change.at,
        source: change.source,
        ...(change.eventId !== undefined ? { eventId: change.eventId } : {}),
      });
      current = undefined;
    } else {
      perChange.push(undefined);
    }
  }
  return { perChange, ids: changes.map((change) => change.id), before, final: current };
}

function castEvent(
  identity: VoteIdentity,
  change: TrailChange,
  previous: number | undefined,
): VoteEvent {
  return {
    kind: previous === undefined ? "add" : "replace",
    ...identity,
    score: change.score,
    ...(previous !== undefined ? { previous } : {}),
    at: change.at,
    source: change.source,
    ...(change.eventId !== undefined ? { eventId: change.eventId } : {}),
  };
}
