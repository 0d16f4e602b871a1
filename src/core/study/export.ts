/**
 * Votes and vote events as CSV (RFC 4180, header row) or JSON lines. The arm column is empty
 * (CSV) or null (JSON) for generations whose study is still running.
 */

import { csvField } from "../csv.js";
import type { VoteEvent, VoteStore } from "../types.js";
import type { VoteRow } from "./results.js";

export type ExportFormat = "csv" | "jsonl";

export const VOTE_COLUMNS = [
  "generation_id",
  "study_id",
  "arm",
  "rater",
  "dimension",
  "score",
  "at",
] as const;
export const EVENT_COLUMNS = [
  "at",
  "kind",
  "generation_id",
  "rater",
  "dimension",
  "score",
  "previous",
] as const;

export function voteRowsToText(rows: readonly VoteRow[], format: ExportFormat): string {
  const records = rows.map((row) => ({
    generation_id: row.generationId,
    study_id: row.studyId,
    arm: row.arm,
    rater: row.rater,
    dimension: row.dimension,
    score: row.score,
    at: row.at,
  }));
  return format === "csv" ? toCsv(VOTE_COLUMNS, records) : toJsonl(records);
}

export function eventsToText(events: readonly VoteEvent[], format: ExportFormat): string {
  const records = events.map((event) => ({
    at: event.at,
    kind: event.kind,
    generation_id: event.generationId,
    rater: event.rater,
    dimension: event.dimension,
    score: event.score,
    previous: event.previous ?? null,
  }));
  return format === "csv" ? toCsv(EVENT_COLUMNS, records) : toJsonl(records);
}

type Cell = string | number | null | undefined;

export function toCsv(
  columns: readonly string[],
  records: readonly Record<string, Cell>[],
): string {
  const lines = records.map((record) => columns.map((c) => csvField(record[c])).join(","));
  return `${[columns.join(","), ...lines].join("\n")}\n`;
}

function toJsonl(records: readonly object[]): string {
  return records.map((record) => `${JSON.stringify(record)}\n`).join("");
}

/**
 * The event log, oldest first, limited to one study's generations when `study` is given (each
 * generation is looked up once).
 */
export async function* studyEvents(
  store: Pick<VoteStore, "events" | "getGeneration">,
  study: string | undefined,
): AsyncIterable<VoteEvent> {
  if (study === undefined) {
    yield* store.events();
    return;
  }
  const inStudy = new Map<string, boolean>();
  for await (const event of store.events()) {
    let member = inStudy.get(event.generationId);
    if (member === undefined) {
      member = (await store.getGeneration(event.generationId))?.studyId === study;
      inStudy.set(event.generationId, member);
    }
    if (member) yield event;
  }
}
