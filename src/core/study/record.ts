/**
 * Study records: one JSON file per study in `<dataDir>/studies/<id>.json`, written atomically
 * (a temporary file in the same folder, then rename). The record is server-side: it holds the
 * assignment secret and, for batch studies, the plan with each item's arm. What may be shown
 * while a study runs is `publicStudy(record)`.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { UserError } from "../errors.js";

export const STUDY_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const ARM_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const planItemSchema = z
  .object({
    id: z.string().min(1),
    survey: z.number().int().min(1),
    position: z.number().int().min(1),
    concept: z.string().min(1),
    promptIndex: z.number().int().min(1),
    arm: z.string().regex(ARM_NAME),
    seed: z.number().int().min(0),
  })
  .strict();

const planSchema = z
  .object({
    seed: z.number().int(),
    concepts: z.array(z.string().min(1)).min(1),
    arms: z.array(z.string().regex(ARM_NAME)).min(1),
    promptsPerConcept: z.number().int().min(1),
    surveys: z.number().int().min(1),
    items: z.array(planItemSchema),
  })
  .strict();

export const studyRecordSchema = z
  .object({
    version: z.literal(1),
    id: z.string().regex(STUDY_ID),
    name: z.string().min(1),
    mode: z.enum(["live", "batch"]),
    arms: z.array(z.string().regex(ARM_NAME)).min(2),
    /** Live: the channels whose /imagine requests join the study. Batch: where items are posted. */
    channels: z.array(z.string().min(1)),
    status: z.enum(["running", "closed"]),
    createdAt: z.string(),
    closedAt: z.string().optional(),
    createdBy: z.string().optional(),
    /** Live only: the assignment secret (hex) and how many arms were handed out. */
    assignment: z
      .object({ secret: z.string().regex(/^[0-9a-f]{64}$/), assigned: z.number().int().min(0) })
      .strict()
      .optional(),
    /** Batch only: the plan, and the ids of the items already posted (resume skips them). */
    plan: planSchema.optional(),
    posted: z.array(z.string()).optional(),
  })
  .strict();

export type StudyRecord = z.infer<typeof studyRecordSchema>;
export type StudyMode = StudyRecord["mode"];

/** What may be shown about a study at any time: no secret, no plan arms, no per-arm counts. */
export interface PublicStudy {
  id: string;
  name: string;
  mode: StudyMode;
  arms: string[];
  channels: string[];
  status: StudyRecord["status"];
  createdAt: string;
  closedAt?: string;
  /** Live: images assigned so far. Batch: items posted so far. */
  images: number;
  /** Batch: items in the plan. */
  planned?: number;
  /** Batch: concepts, prompts per concept and surveys of the plan (no arms per item). */
  design?: { concepts: string[]; promptsPerConcept: number; surveys: number };
}

export function publicStudy(record: StudyRecord): PublicStudy {
  return {
    id: record.id,
    name: record.name,
    mode: record.mode,
    arms: [...record.arms],
    channels: [...record.channels],
    status: record.status,
    createdAt: record.createdAt,
    ...(record.closedAt === undefined ? {} : { closedAt: record.closedAt }),
    images:
      record.mode === "live" ? (record.assignment?.assigned ?? 0) : (record.posted?.length ?? 0),
    ...(record.plan === undefined
      ? {}
      : {
          planned: record.plan.items.length,
          design: {
            concepts: [...record.plan.concepts],
            promptsPerConcept: record.plan.promptsPerConcept,
            surveys: record.plan.surveys,
          },
        }),
  };
}

/** Reads and writes study files under `<dataDir>/studies/`. */
export class StudyFiles {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "studies");
  }

  file(id: string): string {
    checkId(id);
    return join(this.dir, `${id}.json`);
  }

  async read(id: string): Promise<StudyRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(id), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    return parseRecord(text, this.file(id));
  }

  async list(): Promise<StudyRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const records: StudyRecord[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith(".json")) continue;
      const id = name.slice(0, -".json".length);
      if (!STUDY_ID.test(id)) continue;
      const record = await this.read(id);
      if (record !== undefined) records.push(record);
    }
    return records.sort(
      (a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id),
    );
  }

  /** Atomic: readers see the old file or the new one, never half of one. */
  async write(record: StudyRecord): Promise<void> {
    const checked = studyRecordSchema.parse(record);
    await mkdir(this.dir, { recursive: true });
    const target = this.file(checked.id);
    const temporary = `${target}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(temporary, `${JSON.stringify(checked, null, 2)}\n`, { mode: 0o600 });
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }
}

function parseRecord(text: string, file: string): StudyRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const parsed = studyRecordSchema.safeParse(value);
  if (!parsed.success) {
    throw new Error(`${file}: not a study record: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  }
  return parsed.data;
}

export function checkId(id: string): string {
  if (!STUDY_ID.test(id)) {
    throw new UserError(
      "USAGE",
      `"${id}" is not a study id (lowercase letters, digits and -, as printed by study start)`,
    );
  }
  return id;
}
