/**
 * Studies: starting, stopping and listing them, blind balanced arm assignment for live studies,
 * resumable posting of batch plans, and results — revealed only once a study is closed.
 *
 * With an ArmWarmer (the bot's PromptArms), every arm of a study is loaded and warmed before
 * the study's first image: when it starts here, when serve starts with it open
 * (`warmOpenStudies`), and — for a study started by another process (the CLI) — before the
 * first arm assignment or batch post this process makes for it. So no arm's first image is
 * slower than the others', and timing tells a rater nothing. Logs name a study's arms only by
 * count.
 *
 * Every change is a read-modify-write of the study's file under one in-process lock, reading
 * the file fresh each time, so that a `study stop` from another process (the CLI) is seen by
 * the bot at its next /imagine. (Two processes writing the same file in the same millisecond
 * could still lose one write; the bot is the only process that assigns arms.)
 */
import { randomBytes as systemRandomBytes } from "node:crypto";
import { UserError } from "../errors.js";
import type { Logger, VoteStore } from "../types.js";
import { armForAssignment } from "./assign.js";
import type { PlanItem, StudyPlan } from "./plan.js";
import { checkId, type PublicStudy, publicStudy, StudyFiles, type StudyRecord } from "./record.js";
import {
  collectStudyRatings,
  type ResultsOptions,
  type ResultsReport,
  resultsReport,
} from "./results.js";
import { type PlanProgress, type RunPlanResult, runStudyPlan } from "./runner.js";

const ARM_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** Loads and warms prompt arms; PromptArms implements it (PromptArms.warm). */
export interface ArmWarmer {
  /** Rejects when an arm cannot be loaded (ARM_UNKNOWN for a name that is not configured). */
  warm(arms: readonly string[]): Promise<unknown>;
}

/** What warmOpenStudies did. */
export interface WarmOpenStudies {
  /** Running studies whose arms are all warm. */
  warmed: string[];
  /** Running studies with an arm that failed to load (also logged). */
  failed: { studyId: string; error: unknown }[];
}

export interface StudyManagerOptions {
  dataDir: string;
  /** Wall clock for createdAt/closedAt (default: now). */
  now?: () => Date;
  /** Bytes for study ids and assignment secrets (default: node:crypto's CSPRNG). */
  randomBytes?: (size: number) => Buffer;
  logger?: Logger;
  /**
   * How batch studies are posted where this manager runs (a chat adapter: imagine each item with
   * { arm: item.arm, studyId, seed: item.seed } and post it to the study's channel). Without it,
   * `startPosting` does nothing and says so.
   */
  poster?: BatchPoster;
  /** Warms a study's arms before its first image (see the module comment). */
  warmer?: ArmWarmer;
}

export interface BatchPoster {
  post(item: PlanItem, study: StudyRecord): Promise<void>;
  /** Milliseconds from one post's start to the next's. */
  intervalMs: number;
  onProgress?(studyId: string, progress: PlanProgress): void;
}

interface StartCommon {
  name: string;
  arms: readonly string[];
  createdBy?: string;
}

export interface StartLiveStudy extends StartCommon {
  mode: "live";
  /** Channels whose /imagine requests join the study. */
  channels: readonly string[];
}

export interface StartBatchStudy extends StartCommon {
  mode: "batch";
  plan: StudyPlan;
  /** Where the adapter posts the items (optional: the CLI writes them to the data directory). */
  channels?: readonly string[];
}

export type StartStudy = StartLiveStudy | StartBatchStudy;

/** The arm for one /imagine, and the study it belongs to. Server-side only. */
export interface ArmAssignment {
  studyId: string;
  arm: string;
}

export interface RunBatchOptions {
  /** Makes and posts one item: imagine with { arm: item.arm, studyId, seed: item.seed }. */
  post(item: PlanItem, studyId: string): Promise<void>;
  intervalMs: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  signal?: AbortSignal;
  onProgress?(progress: PlanProgress): void;
}

export interface StudyResults extends ResultsReport {
  study: PublicStudy;
}

export class StudyManager {
  readonly files: StudyFiles;
  private readonly now: () => Date;
  private readonly randomBytes: (size: number) => Buffer;
  private readonly logger: Logger | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private readonly runs = new Map<string, AbortController>();
  private readonly background = new Set<Promise<unknown>>();
  private poster: BatchPoster | undefined;
  private warmer: ArmWarmer | undefined;
  /** Studies whose arms are warm (or warming) in this process; a failure is forgotten. */
  private readonly warmStudies = new Map<string, Promise<void>>();

  constructor(options: StudyManagerOptions) {
    this.files = new StudyFiles(options.dataDir);
    this.now = options.now ?? (() => new Date());
    this.randomBytes = options.randomBytes ?? systemRandomBytes;
    this.logger = options.logger;
    this.poster = options.poster;
    this.warmer = options.warmer;
  }

  /** Sets (or clears) what warms a study's arms. */
  setWarmer(warmer: ArmWarmer | undefined): void {
    this.warmer = warmer;
    this.warmStudies.clear();
  }

  /**
   * For serve's start: loads and warms the arms of every running study, one study after
   * another, before the first image. A study whose arms fail to load is logged and reported,
   * not thrown: the others still get warm, and its next assignment or post tries again.
   */
  async warmOpenStudies(): Promise<WarmOpenStudies> {
    const result: WarmOpenStudies = { warmed: [], failed: [] };
    if (this.warmer === undefined) return result;
    for (const record of await this.list()) {
      if (record.status !== "running") continue;
      try {
        await this.warmStudy(record);
        result.warmed.push(record.id);
      } catch (error) {
        result.failed.push({ studyId: record.id, error });
        this.logger?.error({ err: error, studyId: record.id }, "study arms could not be loaded");
      }
    }
    return result;
  }

  /** Warms a study's arms once per process (concurrent callers share the warm-up). */
  private warmStudy(record: Pick<StudyRecord, "id" | "arms">): Promise<void> {
    const warmer = this.warmer;
    if (warmer === undefined) return Promise.resolve();
    let warming = this.warmStudies.get(record.id);
    if (!warming) {
      const started = performance.now();
      warming = warmer.warm(record.arms).then(() => {
        this.logger?.info(
          {
            studyId: record.id,
            arms: record.arms.length,
            ms: Math.round(performance.now() - started),
          },
          "study arms loaded",
        );
      });
      this.warmStudies.set(record.id, warming);
      warming.catch(() => this.warmStudies.delete(record.id));
    }
    return warming;
  }

  /** Sets (or clears) how batch studies are posted; adapters call it once they can post. */
  setPoster(poster: BatchPoster | undefined): void {
    this.poster = poster;
  }

  /**
   * Starts posting a running batch study's remaining items in the background with the
   * configured poster. Returns false when there is no poster here or it is already posting.
   * Failures are logged; the study resumes from the first unposted item next time.
   */
  async startPosting(id: string): Promise<boolean> {
    const poster = this.poster;
    if (poster === undefined || this.runs.has(id)) return false;
    const record = await this.require(id);
    if (record.mode !== "batch" || record.status !== "running" || this.runs.has(id)) return false;
    const run = this.runBatch(id, {
      post: (item) => poster.post(item, record),
      intervalMs: poster.intervalMs,
      onProgress: (progress) => poster.onProgress?.(id, progress),
    }).then(
      (result) => this.logger?.info({ studyId: id, ...result }, "study posting ended"),
      (error) => this.logger?.error({ err: error, studyId: id }, "study posting failed"),
    );
    this.background.add(run);
    void run.finally(() => this.background.delete(run));
    return true;
  }

  /** After a restart: resumes posting every running batch study. Returns their ids. */
  async resumePosting(): Promise<string[]> {
    const started: string[] = [];
    for (const record of await this.list()) {
      if (
        record.mode === "batch" &&
        record.status === "running" &&
        (await this.startPosting(record.id))
      ) {
        started.push(record.id);
      }
    }
    return started;
  }

  /** Stops background posting (between items) and waits for it. */
  async close(): Promise<void> {
    for (const controller of this.runs.values()) controller.abort();
    await Promise.allSettled([...this.background]);
  }

  async start(input: StartStudy): Promise<StudyRecord> {
    const name = input.name.trim();
    if (name === "" || name.length > 100) {
      throw new UserError("USAGE", "a study needs a name of 1 to 100 characters");
    }
    const arms = checkArms(input.arms);
    const channels = [...new Set((input.channels ?? []).map((c) => c.trim()).filter((c) => c))];
    if (input.mode === "live" && channels.length === 0) {
      throw new UserError("USAGE", "a live study needs at least one channel");
    }
    if (input.mode === "batch") {
      const planArms = [...input.plan.arms].sort();
      if (planArms.join(",") !== [...arms].sort().join(",")) {
        throw new UserError(
          "USAGE",
          `the plan's arms (${input.plan.arms.join(", ")}) are not the study's (${arms.join(", ")})`,
        );
      }
      if (input.plan.items.length === 0) throw new UserError("USAGE", "the plan has no items");
    }
    // Every arm loads and warms before the study exists: an arm that cannot load refuses the
    // study, and its first image is as fast as any other.
    // (The channel check runs first too, so a refused study costs no warm-up; the warm-up runs
    // outside the lock, so /imagine assignments of other studies go on meanwhile.)
    const warmer = this.warmer;
    const warmStarted = performance.now();
    if (warmer !== undefined) {
      if (input.mode === "live") await this.refuseSharedChannels(channels);
      await warmer.warm(arms);
    }
    const warmMs = Math.round(performance.now() - warmStarted);
    const record = await this.exclusive(async () => {
      if (input.mode === "live") await this.refuseSharedChannels(channels);
      const id = `${slug(name)}-${this.randomBytes(4).toString("hex")}`;
      const record: StudyRecord = {
        version: 1,
        id,
        name,
        mode: input.mode,
        arms,
        channels,
        status: "running",
        createdAt: this.now().toISOString(),
        ...(input.createdBy === undefined ? {} : { createdBy: input.createdBy }),
        ...(input.mode === "live"
          ? { assignment: { secret: this.randomBytes(32).toString("hex"), assigned: 0 } }
          : { plan: structuredClone(input.plan), posted: [] }),
      };
      await this.files.write(record);
      this.logger?.info({ studyId: id, mode: input.mode, arms: arms.length }, "study started");
      return record;
    });
    if (warmer !== undefined && warmer === this.warmer) {
      this.warmStudies.set(record.id, Promise.resolve());
      this.logger?.info({ studyId: record.id, arms: arms.length, ms: warmMs }, "study arms loaded");
    }
    return record;
  }

  /** A live study's channels may not be in another running live study. */
  private async refuseSharedChannels(channels: readonly string[]): Promise<void> {
    for (const other of await this.files.list()) {
      if (other.status !== "running" || other.mode !== "live") continue;
      const shared = other.channels.find((c) => channels.includes(c));
      if (shared !== undefined) {
        throw new UserError(
          "USAGE",
          `channel ${shared} is already in running study ${other.id} ("${other.name}"); stop it first`,
        );
      }
    }
  }

  /** Closes a study: assignment and posting stop, and its results can be revealed. */
  async stop(id: string): Promise<StudyRecord> {
    this.runs.get(id)?.abort();
    return this.exclusive(async () => {
      const record = await this.require(id);
      if (record.status === "closed") return record;
      const closed: StudyRecord = {
        ...record,
        status: "closed",
        closedAt: this.now().toISOString(),
      };
      await this.files.write(closed);
      this.logger?.info({ studyId: id }, "study closed");
      return closed;
    });
  }

  async get(id: string): Promise<StudyRecord | undefined> {
    return this.files.read(checkId(id));
  }

  async require(id: string): Promise<StudyRecord> {
    const record = await this.get(id);
    if (record === undefined) {
      throw new UserError("USAGE", `no study ${id} (study status lists the studies)`);
    }
    return record;
  }

  list(): Promise<StudyRecord[]> {
    return this.files.list();
  }

  /** Study ids whose results may be shown: the closed ones. */
  async revealedIds(): Promise<Set<string>> {
    return new Set((await this.list()).filter((s) => s.status === "closed").map((s) => s.id));
  }

  /**
   * The arm for an /imagine in `channel`, if a running live study covers that channel; the
   * assignment is persisted before it is returned, so a restart keeps the balance.
   */
  async assignArm(channel: string | undefined): Promise<ArmAssignment | undefined> {
    if (channel === undefined || channel === "") return undefined;
    const assigned = await this.exclusive(async () => {
      const record = (await this.files.list()).find(
        (s) => s.status === "running" && s.mode === "live" && s.channels.includes(channel),
      );
      if (record?.assignment === undefined) return undefined;
      const n = record.assignment.assigned;
      const arm = armForAssignment(record.assignment.secret, record.arms, n);
      await this.files.write({
        ...record,
        assignment: { ...record.assignment, assigned: n + 1 },
      });
      return { assignment: { studyId: record.id, arm }, record };
    });
    if (assigned === undefined) return undefined;
    // A study started elsewhere (the CLI) gets all its arms warm before its first image here.
    // A failure is only logged: the image's own arm load then reports it to the person.
    await this.warmStudy(assigned.record).catch((error: unknown) =>
      this.logger?.error(
        { err: error, studyId: assigned.record.id },
        "study arms could not be loaded",
      ),
    );
    return assigned.assignment;
  }

  /**
   * Posts a running batch study's remaining items (resuming after the ones already posted),
   * marking each as posted in the study file. `stop(id)` ends it between items.
   */
  async runBatch(id: string, options: RunBatchOptions): Promise<RunPlanResult> {
    checkId(id);
    // Claimed before the first await, so two calls at once cannot both post.
    if (this.runs.has(id)) throw new UserError("USAGE", `study ${id} is already posting`);
    const controller = new AbortController();
    this.runs.set(id, controller);
    try {
      const record = await this.require(id);
      if (record.mode !== "batch" || record.plan === undefined) {
        throw new UserError("USAGE", `study ${id} is a live study: it has no plan to post`);
      }
      if (record.status !== "running") throw new UserError("USAGE", `study ${id} is closed`);
      await this.warmStudy(record);
      const signal =
        options.signal === undefined
          ? controller.signal
          : AbortSignal.any([controller.signal, options.signal]);
      return await runStudyPlan({
        items: record.plan.items,
        posted: record.posted ?? [],
        post: (item) => options.post(item, id),
        markPosted: (item) => this.markPosted(id, item.id),
        intervalMs: options.intervalMs,
        signal,
        ...(options.sleep ? { sleep: options.sleep } : {}),
        ...(options.now ? { now: options.now } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
    } finally {
      this.runs.delete(id);
    }
  }

  async markPosted(id: string, itemId: string): Promise<void> {
    await this.exclusive(async () => {
      const record = await this.require(id);
      const posted = record.posted ?? [];
      if (posted.includes(itemId)) return;
      await this.files.write({ ...record, posted: [...posted, itemId] });
    });
  }

  /**
   * The study's results: Table 1 summaries, agreement and arm comparisons. Refused while the
   * study runs, so that no arm is revealed before it closes.
   */
  async results(id: string, votes: VoteStore, options: ResultsOptions = {}): Promise<StudyResults> {
    const record = await this.require(id);
    if (record.status !== "closed") {
      throw new UserError(
        "USAGE",
        `study ${id} is still running: its results stay hidden until it is closed (study stop ${id})`,
      );
    }
    const ratings = await collectStudyRatings(votes, id, record);
    return {
      ...resultsReport(ratings, { arms: record.arms, ...options }),
      study: publicStudy(record),
    };
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.lock.then(task, task);
    this.lock = result.catch(() => {});
    return result;
  }
}

function checkArms(values: readonly string[]): string[] {
  const arms = values.map((arm) => arm.trim()).filter((arm) => arm !== "");
  if (arms.length < 2) throw new UserError("USAGE", "a study compares at least two arms");
  const bad = arms.find((arm) => !ARM_NAME.test(arm));
  if (bad !== undefined) throw new UserError("USAGE", `"${bad}" is not an arm name`);
  const duplicate = arms.find((arm, i) => arms.indexOf(arm) !== i);
  if (duplicate !== undefined) throw new UserError("USAGE", `arm ${duplicate} is listed twice`);
  return arms;
}

function slug(name: string): string {
  const text = name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  return text === "" ? "study" : text;
}
