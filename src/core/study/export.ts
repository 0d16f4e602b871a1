/**
 * The one vote exporter: current votes and vote events as CSV (RFC 4180, header row) or JSON
 * lines, with one set of column names, used by `votes export` (CLI, streamed) and the `export`
 * command (a file).
 *
 * Votes, one row per (generation, rater, dimension):
 *   generation_id  the image's generation id
 *   study_id       its study, empty/null outside studies
 *   survey         its survey in a batch study ("1", "2", …), empty/null otherwise
 *   arm            the prompt generator; empty/null while the image's study is not closed
 *   rater          platform:user id
 *   dimension      quality | faithfulness
 *   score          1–4
 *   at             when the current vote was cast (ISO 8601)
 * Events, oldest first: at, kind (add | replace | retract), generation_id, study_id, survey,
 * rater, dimension, score, previous (the replaced score). Events never carry the arm.
 */

import { csvField } from "../csv.js";
import type { Generation, Vote, VoteStore } from "../types.js";
import type { StudyRecord } from "./record.js";
import { currentVotes, surveyOf } from "./results.js";

export type ExportFormat = "csv" | "jsonl";

export const VOTE_COLUMNS = [
  "generation_id",
  "study_id",
  "survey",
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
  "study_id",
  "survey",
  "rater",
  "dimension",
  "score",
  "previous",
] as const;

type Cell = string | number | null;
export type VoteRecord = Record<(typeof VOTE_COLUMNS)[number], Cell>;
export type EventRecord = Record<(typeof EVENT_COLUMNS)[number], Cell>;

/** The header line of a CSV export (JSON lines have none). */
export function exportHeader(columns: readonly string[], format: ExportFormat): string {
  return format === "csv" ? `${columns.join(",")}\n` : "";
}

/** One record as a CSV line or a JSON line (with every column, null where empty). */
export function exportLine(
  columns: readonly string[],
  record: Readonly<Record<string, Cell>>,
  format: ExportFormat,
): string {
  if (format === "jsonl") {
    return `${JSON.stringify(Object.fromEntries(columns.map((c) => [c, record[c] ?? null])))}\n`;
  }
  return `${columns.map((c) => csvField(record[c])).join(",")}\n`;
}

export interface ExportOptions {
  /** Only this study's images. */
  study?: string;
  /** The study records: closed ones reveal their arms, batch ones give each image's survey. */
  studies: readonly StudyRecord[];
}

/** What the exporter knows about a generation: its study, survey, and the arm if revealed. */
function describer(studies: readonly StudyRecord[]) {
  const closed = new Set(studies.filter((s) => s.status === "closed").map((s) => s.id));
  const surveys = new Map(
    studies.flatMap((s) => (s.plan === undefined ? [] : [[s.id, surveyOf(s.plan)] as const])),
  );
  return (generation: Generation | undefined) => {
    const studyId = generation?.studyId ?? null;
    const hidden = studyId !== null && !closed.has(studyId);
    return {
      study_id: studyId,
      survey:
        (studyId === null ? undefined : surveys.get(studyId)?.(generation as Generation)) ?? null,
      arm: generation === undefined || hidden ? null : generation.arm,
    };
  };
}

/** A generation lookup that asks the store once per generation. */
function generationCache(store: Pick<VoteStore, "getGeneration">) {
  const cache = new Map<string, Generation | undefined>();
  return async (id: string) => {
    if (!cache.has(id)) cache.set(id, await store.getGeneration(id));
    return cache.get(id);
  };
}

/**
 * The current votes as records, streamed: one study's through `studyVotes`, all of them
 * generation by generation where the store lists generations, else replayed from the log.
 */
export async function* voteRecords(
  store: VoteStore,
  options: ExportOptions,
): AsyncIterable<VoteRecord> {
  const describe = describer(options.studies);
  const generation = generationCache(store);
  const record = (vote: Vote, known: Generation | undefined): VoteRecord => ({
    generation_id: vote.generationId,
    ...describe(known),
    rater: vote.rater,
    dimension: vote.dimension,
    score: vote.score,
    at: vote.at,
  });
  if (options.study !== undefined) {
    for await (const vote of store.studyVotes(options.study)) {
      yield record(vote, await generation(vote.generationId));
    }
    return;
  }
  const listed = (store as Partial<{ generations(): AsyncIterable<Generation> }>).generations;
  if (typeof listed === "function") {
    for await (const known of listed.call(store)) {
      for (const vote of await store.votesOf(known.id)) yield record(vote, known);
    }
    return;
  }
  for (const vote of await currentVotes(store.events())) {
    yield record(vote, await generation(vote.generationId));
  }
}

/** The event log as records, oldest first, limited to one study's images when asked. */
export async function* eventRecords(
  store: Pick<VoteStore, "events" | "getGeneration">,
  options: ExportOptions,
): AsyncIterable<EventRecord> {
  const describe = describer(options.studies);
  const generation = generationCache(store);
  for await (const event of store.events()) {
    const known = await generation(event.generationId);
    if (options.study !== undefined && known?.studyId !== options.study) continue;
    const { study_id, survey } = describe(known);
    yield {
      at: event.at,
      kind: event.kind,
      generation_id: event.generationId,
      study_id,
      survey,
      rater: event.rater,
      dimension: event.dimension,
      score: event.score,
      previous: event.previous ?? null,
    };
  }
}

/** A whole export as one string (the `export` command's file). Returns it and its row count. */
export async function exportText(
  records: AsyncIterable<Readonly<Record<string, Cell>>>,
  columns: readonly string[],
  format: ExportFormat,
): Promise<{ text: string; rows: number }> {
  let text = exportHeader(columns, format);
  let rows = 0;
  for await (const record of records) {
    text += exportLine(columns, record, format);
    rows++;
  }
  return { text, rows };
}
