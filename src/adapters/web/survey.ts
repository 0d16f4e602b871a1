/**
 * A rater's survey: the items of their survey in the plan's (randomised) posting order, each
 * matched to the generation that was posted for it, their current answers, and recording an
 * answer as votes (rater `web:<name>`, source "web") exactly once however often it is sent.
 *
 * A plan item is matched to its generation by core's planItemOf (the plan item id the poster
 * stored, else arm, subject and seed); when an item was posted twice (a crash between posting
 * and marking it posted) the earliest generation counts, as in chat. Items not posted yet are shown
 * as "not ready" and cannot be answered.
 */
import { statSync } from "node:fs";
import type { Invite } from "../../core/study/invite.js";
import type { StudyManager } from "../../core/study/manager.js";
import { type PlanItem, planSurveys, type StudyPlan } from "../../core/study/plan.js";
import type { StudyRecord } from "../../core/study/record.js";
import { planItemOf } from "../../core/study/results.js";
import type {
  Dimension,
  Generation,
  Logger,
  Vote,
  VoteEvent,
  VoteStore,
} from "../../core/types.js";

/** The vote store plus a listing of one study's generations and a rater's votes (KeyvVoteStore has them). */
export type SurveyVoteStore = VoteStore & {
  studyGenerations(studyId: string): AsyncIterable<Generation>;
  votesOfRater(rater: string, generationIds: readonly string[]): Promise<Vote[]>;
};

/** A refusal shown to the person as a page with this status. */
export class WebRefusal extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 410 | 429,
    message: string,
    /** For a 429: when to try again (sent as Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "WebRefusal";
  }
}

export interface SurveyItem {
  /** 1-based position in the rater's survey (what URLs use). */
  position: number;
  item: PlanItem;
  /** The posted generation; undefined while the item is not posted. */
  generation?: Generation;
}

export interface Survey {
  study: StudyRecord;
  /** The vote store's rater: `web:<name>`. */
  rater: string;
  items: SurveyItem[];
}

export type Answers = Partial<Record<Dimension, number>>;

/** How long a study's generation index is trusted before a missing item looks again. */
const INDEX_REFRESH_MS = 2_000;
/**
 * How long a rater's answers are shown from memory before they are read again (a rater's web
 * votes only change through this server; recording always reads the store afresh).
 */
const ANSWERS_REFRESH_MS = 30_000;

export class Surveys {
  private readonly indexes = new Map<
    string,
    { at: number; byKey: Map<string, Generation>; loading?: Promise<void> }
  >();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per study and rater: answers by generation id, and when they were read. */
  private readonly answerCache = new Map<
    string,
    { at: number; byGeneration: Map<string, Answers> }
  >();
  private readonly surveyItems = new Map<
    string,
    {
      study: StudyRecord;
      index: Map<string, Generation>;
      items: SurveyItem[];
      /** Every item posted: the index need not be looked at again for this record. */
      complete: boolean;
    }
  >();
  /** Study file paths by study id (link ids are signed: a handful of studies). */
  private readonly files = new Map<string, string>();
  /** Study records by file stamp: a `study stop` elsewhere changes the stamp. */
  private readonly records = new Map<string, { stamp: string; record: StudyRecord }>();

  constructor(
    private readonly votes: SurveyVoteStore,
    private readonly studies: StudyManager,
    private readonly logger: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The survey a rater link grants, or a WebRefusal saying why not. */
  async survey(invite: Invite): Promise<Survey> {
    const study = await this.study(invite.studyId);
    if (study === undefined) throw new WebRefusal(404, "This study does not exist any more.");
    if (study.mode !== "batch" || study.plan === undefined) {
      throw new WebRefusal(404, "This study has no survey: it is rated in chat.");
    }
    // The same record and index give the same items: built once, shared by every request.
    const cacheKey = `${study.id}:${invite.survey}`;
    let built = this.surveyItems.get(cacheKey);
    if (built === undefined || built.study !== study || !built.complete) {
      const items = planSurveys(study.plan)[invite.survey - 1];
      if (items === undefined || items.length === 0) {
        throw new WebRefusal(404, "This link names a survey that the study does not have.");
      }
      const index = await this.index(study, items);
      if (built?.study !== study || built.index !== index) {
        const entries = items.map((item, i) => {
          const generation = index.get(item.id);
          return { position: i + 1, item, ...(generation ? { generation } : {}) };
        });
        built = {
          study,
          index,
          items: entries,
          complete: entries.every((entry) => entry.generation !== undefined),
        };
        this.surveyItems.set(cacheKey, built);
      }
    }
    return { study, rater: `web:${invite.rater}`, items: built.items };
  }

  /**
   * The study record, read again only when its file changed. The stamp is taken with a
   * synchronous stat on every request, so a `study stop` anywhere counts at once: on a local disk
   * it is a ~2 µs system call, where the promise API's trip through libuv's thread pool costs
   * 15–40 µs of CPU and queues behind the vote store's SQLite work on that same pool.
   */
  private async study(id: string): Promise<StudyRecord | undefined> {
    let stamp: string;
    try {
      let file = this.files.get(id);
      if (file === undefined) {
        file = this.studies.files.file(id); // checks the id, then joins: once per study
        this.files.set(id, file);
      }
      const info = statSync(file);
      stamp = `${info.mtimeMs}:${info.size}:${info.ino}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    const cached = this.records.get(id);
    if (cached?.stamp === stamp) return cached.record;
    const record = await this.studies.get(id);
    if (record !== undefined) this.records.set(id, { stamp, record });
    return record;
  }

  /** The rater's current answers to each posted item, by position. */
  async answers(survey: Survey): Promise<Map<number, Answers>> {
    const key = `${survey.study.id}\u0000${survey.rater}`;
    let cached = this.answerCache.get(key);
    if (cached === undefined || this.now() - cached.at > ANSWERS_REFRESH_MS) {
      const byGeneration = new Map<string, Answers>();
      const at = this.now();
      const posted = survey.items.flatMap((entry) => entry.generation?.id ?? []);
      for (const id of posted) byGeneration.set(id, {});
      // One read for the whole survey: a rater's first page does not queue one per item.
      for (const vote of await this.votes.votesOfRater(survey.rater, posted)) {
        const answers = byGeneration.get(vote.generationId);
        if (answers !== undefined) answers[vote.dimension] = vote.score;
      }
      cached = { at, byGeneration };
      this.answerCache.set(key, cached);
    }
    const answers = new Map<number, Answers>();
    for (const entry of survey.items) {
      if (entry.generation === undefined) continue;
      let known = cached.byGeneration.get(entry.generation.id);
      if (known === undefined) {
        // Posted since the answers were read.
        known = await this.answersOf(entry.generation.id, survey.rater);
        cached.byGeneration.set(entry.generation.id, known);
      }
      answers.set(entry.position, known);
    }
    return answers;
  }

  async answersOf(generationId: string, rater: string): Promise<Answers> {
    const answers: Answers = {};
    for (const vote of await this.votes.votesOf(generationId)) {
      if (vote.rater === rater) answers[vote.dimension] = vote.score;
    }
    return answers;
  }

  /**
   * Records an answer: a vote for each dimension whose score changed, none for one that did
   * not (a retried or repeated submission appends nothing), both in one store call and one
   * atomic commit (VoteStore.castAnswer). Serialised per rater and study in this process, so
   * concurrent retries queue instead of racing the store's compare-and-set. Returns how many
   * votes were cast.
   */
  async record(
    survey: Survey,
    entry: SurveyItem,
    scores: Record<Dimension, number>,
  ): Promise<number> {
    const generation = entry.generation;
    if (generation === undefined) {
      throw new WebRefusal(409, "This image is not ready yet: it has not been posted.");
    }
    const key = `${survey.study.id}\u0000${survey.rater}`;
    const task = async () => {
      let events: VoteEvent[];
      try {
        events = await this.votes.castAnswer({
          generationId: generation.id,
          rater: survey.rater,
          scores,
          source: "web",
        });
      } catch (error) {
        this.answerCache.delete(key);
        throw error;
      }
      this.answerCache.get(key)?.byGeneration.set(generation.id, { ...scores });
      return events.length;
    };
    const previous = this.locks.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const settled = result.catch(() => {});
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return result;
  }

  /** Generations of the study by plan key; re-read when an item is missing and the index is old. */
  private async index(
    study: StudyRecord,
    items: readonly PlanItem[],
  ): Promise<Map<string, Generation>> {
    let index = this.indexes.get(study.id);
    const complete = index !== undefined && items.every((item) => index?.byKey.has(item.id));
    if (index === undefined || (!complete && this.now() - index.at > INDEX_REFRESH_MS)) {
      if (index?.loading === undefined) {
        // Never read: older than any refresh interval, so that requests arriving while this
        // first read is on its way wait for it instead of taking the empty map (with `at: 0` on
        // a clock that starts with the process, a server up for less than INDEX_REFRESH_MS
        // showed every image as not ready to those requests).
        const entry = index ?? {
          at: Number.NEGATIVE_INFINITY,
          byKey: new Map<string, Generation>(),
        };
        entry.loading = this.load(study).then(
          (byKey) => {
            entry.byKey = byKey;
            entry.at = this.now();
            delete entry.loading;
          },
          (error: unknown) => {
            delete entry.loading;
            throw error;
          },
        );
        this.indexes.set(study.id, entry);
        index = entry;
      }
      await index.loading;
    }
    return (this.indexes.get(study.id) as { byKey: Map<string, Generation> }).byKey;
  }

  /** The study's posted generations by plan item id. */
  private async load(study: StudyRecord): Promise<Map<string, Generation>> {
    const byKey = new Map<string, Generation>();
    const itemOf = planItemOf(study.plan as StudyPlan);
    let count = 0;
    // The study's own index: a store full of chat generations is not read for one study.
    for await (const generation of this.votes.studyGenerations(study.id)) {
      count++;
      const key = itemOf(generation)?.id;
      if (key === undefined) continue;
      const known = byKey.get(key);
      if (
        known === undefined ||
        generation.createdAt < known.createdAt ||
        (generation.createdAt === known.createdAt && generation.id < known.id)
      ) {
        byKey.set(key, generation);
      }
    }
    this.logger.debug({ studyId: study.id, generations: count }, "survey index loaded");
    return byKey;
  }
}
