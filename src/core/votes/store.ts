/**
 * The vote store: generations and votes on keyv, over SQLite (default), Redis, PostgreSQL or
 * memory (tests). See ./README.md for the key layout and the concurrency argument.
 *
 * Keys (every component encoded with encodeURIComponent, so keys are ASCII and "/" separates):
 *   gen/<generationId>                              the Generation record        (listed: gen/)
 *   msg/<platform>/<messageRef>                     → generationId
 *   study/<studyId>/<generationId>                  → generationId               (listed per study)
 *   vote/<generationId>/<rater>/<dimension>         the current Vote             (listed per generation)
 *   trail/<generationId>/<rater>/<dimension>        the vote's recent changes (trail.ts), replaced
 *                                                   by compare-and-set: the vote's guard
 *   event/<ISO time>-<change id>                    one VoteEvent (listed: event/, in change order)
 *   claim/<key>                                     a claimOnce claim, with its expiry (never listed)
 *   posted/<platform>/<createdAt>/<generationId>    → generationId, once posted (listed per platform
 *                                                   from a time on: reconciliation's window)
 *
 * Every vote lives under its own key and every index entry is its own key (or, on Redis, a
 * member added with ZADD in the same transaction), so no write ever reads, modifies and writes
 * back a record that another rater's vote also changes. One rater's changes to one vote go
 * through its trail with an atomic compare-and-set (Kv.commit), so processes sharing the store
 * agree on the latest change (README: Semantics).
 */
import { randomBytes } from "node:crypto";
import { isAbsolute, resolve } from "node:path";
import { ConfigError, UserError } from "../errors.js";
import {
  type Answer,
  type Ballot,
  DIMENSIONS,
  type Dimension,
  type Generation,
  type Logger,
  type PostedMessage,
  type PostedMessagesQuery,
  type Vote,
  type VoteEvent,
  type VoteStore,
} from "../types.js";
import {
  CLAIM_COLLECTION,
  type Guard,
  type Kv,
  type KvWrite,
  openMemoryKv,
  openPostgresKv,
  openRedisKv,
  openSqliteKv,
} from "./kv.js";
import { applyChange, currentOf, type TrailChange, type VoteTrail } from "./trail.js";

export interface OpenVoteStoreOptions {
  /** Relative sqlite:// paths are resolved here. */
  dataDir: string;
  logger?: Logger;
  /** The clock for vote and event times (tests). */
  now?: () => Date;
}

/** A VoteStore with what the command line and statistics need beyond the contract. */
export interface KeyvVoteStore extends VoteStore {
  /** "memory" | "sqlite" | "redis" | "postgres". */
  readonly backend: string;
  /** Every generation, in id order, streamed. */
  generations(): AsyncIterable<Generation>;
  /** The generations of one study, from the store's per-study index, streamed. */
  studyGenerations(studyId: string): AsyncIterable<Generation>;
  /** Every current vote of every generation, streamed, with the arm (server-side only). */
  allVotes(): AsyncIterable<Vote & { arm: string }>;
  /** One rater's current votes on these generations (a web survey's answers), in one read. */
  votesOfRater(rater: string, generationIds: readonly string[]): Promise<Vote[]>;
}

export const VOTE_STORE_URL_FORMS = [
  "sqlite://votes.sqlite (a file in the data directory; the default)",
  "sqlite:///absolute/path/votes.sqlite",
  "redis://[user:password@]host:6379[/db]",
  "postgresql://user:password@host:5432/database",
  "memory:// (tests only: nothing is kept)",
];

/**
 * Opens the vote store that `url` names. Query parameters: `namespace` (a key prefix, default
 * "imagine", so several deployments can share one Redis or table) on every backend; `table`
 * (default "imagine_votes") on SQLite and PostgreSQL; `schema` (default "public") on PostgreSQL;
 * `synchronous` (normal, the default, or full) on SQLite.
 * Throws ConfigError naming IMAGINE_VOTE_STORE / votes.storeUrl for a URL it cannot use.
 */
export async function openVoteStore(
  url: string,
  options: OpenVoteStoreOptions,
): Promise<KeyvVoteStore> {
  const kv = await openKv(url.trim(), options);
  return new KvVoteStore(kv, options.now ?? (() => new Date()), options.logger);
}

async function openKv(url: string, options: OpenVoteStoreOptions): Promise<Kv> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  const logger = options.logger;
  switch (scheme) {
    case "memory":
      return openMemoryKv(logger);
    case "sqlite": {
      const [path = "", query = ""] = url.slice("sqlite://".length).split("?", 2);
      const params = new URLSearchParams(query);
      if (path === "") throw badUrl(url, "the SQLite file is missing");
      const decoded = decodeURIComponent(path);
      const file = isAbsolute(decoded) ? decoded : resolve(options.dataDir, decoded);
      const synchronous = (params.get("synchronous") ?? "normal").toLowerCase();
      if (synchronous !== "normal" && synchronous !== "full") {
        throw badUrl(
          url,
          `synchronous "${params.get("synchronous")}" must be normal (survives a killed process) or full (also a power loss)`,
        );
      }
      return openSqliteKv(file, {
        table: tableParam(params, "table", "imagine_votes", url),
        prefix: namespacePrefix(params, url),
        synchronous,
        ...(logger ? { logger } : {}),
      });
    }
    case "redis":
    case "rediss": {
      const parsed = parseUrl(url);
      const prefix = namespacePrefix(parsed.searchParams, url);
      parsed.searchParams.delete("namespace");
      return openRedisKv(parsed.toString(), {
        prefix,
        display: redact(parsed),
        ...(logger ? { logger } : {}),
      });
    }
    case "postgres":
    case "postgresql": {
      const parsed = parseUrl(url);
      const params = parsed.searchParams;
      const prefix = namespacePrefix(params, url);
      const table = tableParam(params, "table", "imagine_votes", url);
      const schema = tableParam(params, "schema", "public", url);
      for (const name of ["namespace", "table", "schema"]) params.delete(name);
      return openPostgresKv(parsed.toString(), {
        table,
        schema,
        prefix,
        display: redact(parsed),
        ...(logger ? { logger } : {}),
      });
    }
    default:
      throw badUrl(url, scheme ? `"${scheme}://" is not a supported backend` : "it is not a URL");
  }
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw badUrl(url, "it does not parse as a URL");
  }
}

function tableParam(params: URLSearchParams, name: string, fallback: string, url: string): string {
  const value = params.get(name) ?? fallback;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(value)) {
    throw badUrl(
      url,
      `${name} "${value}" must start with a letter or _ and hold only letters, digits and _`,
    );
  }
  return value;
}

function namespacePrefix(params: URLSearchParams, url: string): string {
  const namespace = params.get("namespace") ?? "imagine";
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(namespace)) {
    throw badUrl(url, `namespace "${namespace}" must be 1–100 letters, digits, _ . or -`);
  }
  return `${namespace}:`;
}

/** The URL without its password, for messages. */
function redact(url: URL): string {
  const copy = new URL(url.toString());
  if (copy.password) copy.password = "***";
  return copy.toString();
}

function badUrl(url: string, why: string): ConfigError {
  let shown = url;
  try {
    shown = redact(new URL(url));
  } catch {
    // Not a URL: hide whatever sits between "user:" and "@".
    shown = url.replace(/(\/\/[^/@:]*:)[^@/]*@/, "$1***@");
  }
  return new ConfigError(
    `votes.storeUrl (set IMAGINE_VOTE_STORE or votes.storeUrl in the config file) is "${shown}": ${why}. Use one of:\n${VOTE_STORE_URL_FORMS.map((form) => `  - ${form}`).join("\n")}`,
  );
}

const enc = encodeURIComponent;
const keys = {
  generations: "gen/",
  generation: (id: string) => `gen/${enc(id)}`,
  message: (platform: string, ref: string) => `msg/${enc(platform)}/${enc(ref)}`,
  study: (studyId: string) => `study/${enc(studyId)}/`,
  votes: (generationId: string) => `vote/${enc(generationId)}/`,
  vote: (v: { generationId: string; rater: string; dimension: Dimension }) =>
    `vote/${enc(v.generationId)}/${enc(v.rater)}/${v.dimension}`,
  events: "event/",
  trail: (v: { generationId: string; rater: string; dimension: Dimension }) =>
    `trail/${enc(v.generationId)}/${enc(v.rater)}/${v.dimension}`,
  claim: (key: string) => CLAIM_COLLECTION + enc(key),
  posted: (platform: string) => `posted/${enc(platform)}/`,
  postedAt: (g: Pick<Generation, "platform" | "createdAt" | "id">) =>
    `posted/${enc(g.platform)}/${enc(g.createdAt)}/${enc(g.id)}`,
};

/** Compare-and-set attempts per change; each failed one means another writer's change landed. */
const MAX_COMMIT_ATTEMPTS = 100;

/** The longest claimOnce key (before encoding): an event id or a request digest is far shorter. */
const MAX_CLAIM_KEY = 400;

class KvVoteStore implements KeyvVoteStore {
  /** In-process queue per vote key: castVote/retractVote of one (generation, rater, dimension) run one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Generations known to exist (they are never deleted), with their platform. */
  private readonly known = new Map<string, string>();
  private sequence = 0;
  private lastMs = 0;
  private readonly instance = randomBytes(3).toString("hex");
  private closing: Promise<void> | undefined;

  constructor(
    private readonly kv: Kv,
    private readonly now: () => Date,
    private readonly logger?: Logger,
  ) {}

  get backend(): string {
    return this.kv.backend;
  }

  async saveGeneration(generation: Generation): Promise<void> {
    if (typeof generation.id !== "string" || generation.id === "") {
      throw new UserError("USAGE", "a generation needs a non-empty id");
    }
    // The record first, then its index entries: an index entry never names a missing record.
    await this.kv.set(keys.generation(generation.id), generation, keys.generations);
    this.known.set(generation.id, generation.platform);
    const writes: Promise<void>[] = [];
    if (generation.messageRef !== undefined) {
      writes.push(
        this.kv.set(keys.message(generation.platform, generation.messageRef), generation.id),
        this.indexPosted(generation),
      );
    }
    if (generation.studyId !== undefined) {
      const study = keys.study(generation.studyId);
      writes.push(this.kv.set(study + enc(generation.id), generation.id, study));
    }
    await Promise.all(writes);
  }

  async getGeneration(id: string): Promise<Generation | undefined> {
    const generation = await this.kv.get<Generation>(keys.generation(id));
    return generation === undefined ? undefined : qualifiedRequester(generation);
  }

  async findGenerationByMessage(
    platform: string,
    messageRef: string,
  ): Promise<Generation | undefined> {
    const id = await this.kv.get<string>(keys.message(platform, messageRef));
    if (id === undefined) return undefined;
    const generation = await this.getGeneration(id);
    return generation?.platform === platform ? generation : undefined;
  }

  setMessageRef(generationId: string, messageRef: string): Promise<void> {
    // The generation record is rewritten here, serialized per generation in this process; only
    // the adapter that posted the image calls this, once.
    return this.serialized(keys.generation(generationId), async () => {
      const generation = await this.getGeneration(generationId);
      if (generation === undefined) {
        throw new UserError("USAGE", `no generation with id ${generationId}`);
      }
      await this.kv.set(keys.message(generation.platform, messageRef), generationId);
      if (generation.messageRef !== undefined && generation.messageRef !== messageRef) {
        await this.kv.delete(keys.message(generation.platform, generation.messageRef));
      }
      await this.kv.set(
        keys.generation(generationId),
        { ...generation, messageRef },
        keys.generations,
      );
      await this.indexPosted(generation);
    });
  }

  /** The posted-message index entry (its value is the id; the record holds the messageRef). */
  private indexPosted(generation: Generation): Promise<void> {
    const collection = keys.posted(generation.platform);
    return this.kv.set(keys.postedAt(generation), generation.id, collection);
  }

  async *postedMessages(query: PostedMessagesQuery): AsyncIterable<PostedMessage> {
    const { platform, since, studyIds = [] } = query;
    if (typeof platform !== "string" || platform === "") {
      throw new UserError("USAGE", "postedMessages needs a platform");
    }
    if (since !== undefined && Number.isNaN(since.getTime())) {
      throw new UserError("USAGE", "postedMessages: since is not a valid date");
    }
    const seen = new Set<string>();
    const posted = (generation: Generation | undefined): PostedMessage | undefined => {
      if (generation?.messageRef === undefined || generation.platform !== platform) return;
      if (seen.has(generation.id)) return;
      seen.add(generation.id);
      return { platform, messageRef: generation.messageRef, generation };
    };
    if (since !== undefined) {
      const collection = keys.posted(platform);
      // Keys are <collection><createdAt>/<id>: everything after "<collection><since>" is newer.
      const after = collection + enc(since.toISOString());
      for await (const [, id] of this.kv.list<string>(collection, 500, after)) {
        const message = posted(await this.getGeneration(id));
        if (message) yield message;
      }
    }
    for (const studyId of new Set(studyIds)) {
      for await (const [, id] of this.kv.list<string>(keys.study(studyId))) {
        const generation = await this.getGeneration(id);
        if (generation?.studyId !== studyId) continue;
        const message = posted(generation);
        if (message) yield message;
      }
    }
  }

  async castVote(vote: Ballot): Promise<VoteEvent> {
    checkVote(vote);
    const platform = await this.requireGeneration(vote.generationId);
    // A cast always has its event (logged now, or earlier for a redelivered one).
    const [event] = await this.applyChanges([{ vote, op: "cast" }], platform, {});
    return event as VoteEvent;
  }

  async retractVote(vote: Ballot): Promise<VoteEvent | undefined> {
    checkVote(vote);
    const [event] = await this.applyChanges([{ vote, op: "retract" }], undefined, {});
    return event;
  }

  async castAnswer(answer: Answer): Promise<VoteEvent[]> {
    const ballots = answerBallots(answer);
    const platform = await this.requireGeneration(answer.generationId);
    // One moment for the whole answer; each dimension still gets its own change id.
    const at = answer.at ?? this.clock();
    const events = await this.applyChanges(
      ballots.map((vote) => ({ vote: { ...vote, at }, op: "cast" as const })),
      platform,
      // Received now, the answer is the latest change: an unchanged score need not be kept. One
      // from the past may sort before a change not stored yet, so it is kept as castVote would.
      { skipUnchanged: answer.at === undefined, skipDuplicates: true, guessFirst: true },
    );
    return events.filter((event): event is VoteEvent => event !== undefined);
  }

  /**
   * Puts each change into its vote's trail (trail.ts) and writes the votes and the log entries
   * that follow, with one compare-and-set on all their trails, so that processes sharing the
   * store apply each vote's changes one at a time and see the changes of one call together or
   * not at all: a writer that lost the race reads the trails again and retries. Within this
   * process changes to one vote also queue, so they rarely collide. The changes are to distinct
   * votes. With `skipUnchanged`, a cast of the score the vote already has changes nothing; with
   * `skipDuplicates`, a redelivered change gives no event (else the one logged before); with
   * `guessFirst`, the first attempt reads nothing and commits as if no vote had a trail or a
   * stored vote yet, on the condition that none has (a survey's answers are mostly first
   * answers: one statement instead of a read and a commit); when some has, it reads and retries.
   * Returns each change's event, in order (undefined: nothing to log for it).
   */
  private applyChanges(
    requests: ReadonlyArray<{ vote: Ballot; op: TrailChange["op"] }>,
    platform: string | undefined,
    options: { skipUnchanged?: boolean; skipDuplicates?: boolean; guessFirst?: boolean },
  ): Promise<Array<VoteEvent | undefined>> {
    const voteKeys = requests.map(({ vote }) => keys.vote(vote));
    const trailKeys = requests.map(({ vote }) => keys.trail(vote));
    return this.serializedAll(voteKeys, async () => {
      // Stamped once: a retry is the same change.
      const stamps: Array<{ at: string; id: string } | undefined> = [];
      for (let attempt = 1; ; attempt++) {
        // The trails, and the votes stored before trails existed, in one read.
        const guessing = attempt === 1 && options.guessFirst === true;
        const read = guessing
          ? {
              guards: trailKeys.map(() => ({ value: undefined, version: undefined })),
              values: voteKeys.map(() => undefined),
            }
          : await this.kv.getVersionedMany<VoteTrail>(trailKeys, voteKeys);
        const events: Array<VoteEvent | undefined> = [];
        const guards: Guard[] = [];
        const writes: KvWrite[] = [];
        for (const [i, { vote, op }] of requests.entries()) {
          const key = voteKeys[i] as string;
          const trailKey = trailKeys[i] as string;
          const identity = {
            generationId: vote.generationId,
            rater: vote.rater,
            dimension: vote.dimension,
          };
          let { value: trail, version } = read.guards[i] as { value?: VoteTrail; version?: string };
          if (trail === undefined) {
            // A vote stored before trails existed is where its trail starts.
            const stored = read.values[i] as Vote | undefined;
            trail =
              stored === undefined
                ? { changes: [] }
                : { base: { score: stored.score, at: stored.at }, changes: [] };
            // Kept even with nothing to retract yet: a cast from before it may still arrive. A
            // retract on a generation that does not exist removes nothing and keeps nothing.
            if (stored === undefined && op === "retract" && !(await this.generationExists(vote))) {
              events.push(undefined);
              continue;
            }
          }
          if (options.skipUnchanged && op === "cast" && currentOf(trail)?.score === vote.score) {
            events.push(undefined);
            continue;
          }
          const source =
            vote.source ?? platform ?? (await this.requireGeneration(vote.generationId));
          stamps[i] ??= this.stamp(vote, source);
          const stamp = stamps[i];
          const change: TrailChange = {
            at: stamp.at,
            id: stamp.id,
            op,
            score: vote.score,
            source,
            ...(vote.eventId !== undefined ? { eventId: vote.eventId } : {}),
          };
          const outcome = applyChange(trail, change, identity);
          events.push(outcome.duplicate && options.skipDuplicates ? undefined : outcome.event);
          if (outcome.duplicate) continue;
          const current = outcome.current;
          guards.push({ key: trailKey, version, value: outcome.trail });
          writes.push(
            {
              key,
              collection: keys.votes(vote.generationId),
              guard: trailKey,
              ...(current === undefined
                ? {}
                : { value: { ...identity, ...current } satisfies Vote }),
            },
            ...outcome.newlyLogged.map(({ at, id, event }) => ({
              key: `${keys.events}${at}-${id}`,
              value: event,
              collection: keys.events,
              guard: trailKey,
            })),
          );
        }
        if (
          guards.length === 0 ||
          (await this.kv.commit(guards, writes, guessing ? voteKeys : []))
        ) {
          return events;
        }
        if (attempt >= MAX_COMMIT_ATTEMPTS) {
          throw new Error(
            `vote store: ${MAX_COMMIT_ATTEMPTS} writers changed vote ${voteKeys.join(", ")} while this one tried to; giving up`,
          );
        }
      }
    });
  }

  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    if (typeof key !== "string" || key === "" || key.length > MAX_CLAIM_KEY) {
      throw new UserError("USAGE", `a claim key must be 1 to ${MAX_CLAIM_KEY} characters`);
    }
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) {
      throw new UserError(
        "USAGE",
        `a claim's time to live must be a whole number of milliseconds ≥ 1, got ${String(ttlMs)}`,
      );
    }
    return this.kv.claim(keys.claim(key), ttlMs, this.now().getTime());
  }

  async votesOf(generationId: string): Promise<Vote[]> {
    const votes: Vote[] = [];
    for await (const [, vote] of this.kv.list<Vote>(keys.votes(generationId))) votes.push(vote);
    return votes;
  }

  async votesOfRater(rater: string, generationIds: readonly string[]): Promise<Vote[]> {
    if (generationIds.length === 0) return [];
    const voteKeys = generationIds.flatMap((generationId) =>
      DIMENSIONS.map((dimension) => keys.vote({ generationId, rater, dimension })),
    );
    const { values } = await this.kv.getVersionedMany([], voteKeys);
    return values.filter((vote): vote is Vote => vote !== undefined);
  }

  async *studyVotes(studyId: string): AsyncIterable<Vote & { arm: string }> {
    for await (const [, generationId] of this.kv.list<string>(keys.study(studyId))) {
      const generation = await this.getGeneration(generationId);
      if (generation === undefined || generation.studyId !== studyId) continue;
      yield* this.votesWithArm(generation);
    }
  }

  async *studyGenerations(studyId: string): AsyncIterable<Generation> {
    for await (const [, generationId] of this.kv.list<string>(keys.study(studyId))) {
      const generation = await this.getGeneration(generationId);
      if (generation?.studyId === studyId) yield generation;
    }
  }

  async *generations(): AsyncIterable<Generation> {
    for await (const [, generation] of this.kv.list<Generation>(keys.generations, 200)) {
      yield qualifiedRequester(generation);
    }
  }

  async *allVotes(): AsyncIterable<Vote & { arm: string }> {
    for await (const generation of this.generations()) yield* this.votesWithArm(generation);
  }

  async *events(): AsyncIterable<VoteEvent> {
    for await (const [, event] of this.kv.list<VoteEvent>(keys.events, 1000)) yield event;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Let votes already accepted finish before the connection goes.
      await Promise.allSettled([...this.locks.values()]);
      await this.kv.close();
    })();
    return this.closing;
  }

  private async *votesWithArm(generation: Generation): AsyncIterable<Vote & { arm: string }> {
    for await (const [, vote] of this.kv.list<Vote>(keys.votes(generation.id))) {
      yield { ...vote, arm: generation.arm };
    }
  }

  private async generationExists(vote: Ballot): Promise<boolean> {
    return (
      this.known.has(vote.generationId) ||
      (await this.getGeneration(vote.generationId)) !== undefined
    );
  }

  /** The generation's platform; throws when there is no such generation. */
  private async requireGeneration(id: string): Promise<string> {
    const known = this.known.get(id);
    if (known !== undefined) return known;
    const generation = await this.getGeneration(id);
    if (generation === undefined) {
      throw new UserError("USAGE", `cannot vote on generation ${id}: there is no such generation`);
    }
    this.known.set(id, generation.platform);
    return generation.platform;
  }

  /**
   * When a change happened and its id (the tie-break, and its log key `event/<at>-<id>`). With
   * the platform's time and event id both are the same in every process that receives the event
   * (so a redelivery is recognised); otherwise the store's clock and a per-process sequence
   * number (orders changes within one millisecond and survives a clock that steps back: time
   * never decreases here), then random bits (keeps two processes' ids apart).
   */
  private stamp(vote: Ballot, source: string): { at: string; id: string } {
    const at = vote.at ?? this.clock();
    if (vote.eventId !== undefined) return { at, id: `${enc(source)}.${enc(vote.eventId)}` };
    this.sequence += 1;
    return {
      at,
      id: `${this.sequence.toString(36).padStart(10, "0")}-${this.instance}${randomBytes(3).toString("hex")}`,
    };
  }

  private clock(): string {
    const ms = Math.max(this.now().getTime(), this.lastMs);
    this.lastMs = ms;
    return new Date(ms).toISOString();
  }

  /**
   * Runs `task` holding the in-process queue of every key (taken in sorted order, so two tasks
   * that share keys cannot wait on each other in a cycle).
   */
  private serializedAll<T>(keys: readonly string[], task: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const run = sorted.reduceRight<() => Promise<T>>(
      (inner, key) => () => this.serialized(key, inner),
      task,
    );
    return run();
  }

  /** Runs `task` after every earlier task on the same key has settled (in this process). */
  private serialized<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key);
    const result = previous ? previous.then(task, task) : task();
    const settled = result.then(
      () => undefined,
      (error: unknown) => this.logger?.debug({ err: error, key }, "vote store write failed"),
    );
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return result;
  }
}

/** Platforms whose requester ids are qualified as `<platform>:<id>`. */
const QUALIFIED_PLATFORMS = new Set(["discord", "slack", "cli"]);

/**
 * Requesters are `<platform>:<id>` everywhere; records written before that (Discord stored the
 * bare user id) are read in the new form, so exports and per-person counts see one id per person.
 * An id that is already qualified ("slack:U0…", a batch study's "study:<id>") is left alone.
 */
export function qualifiedRequester(generation: Generation): Generation {
  const { platform, requester } = generation;
  if (!QUALIFIED_PLATFORMS.has(platform) || requester.includes(":")) return generation;
  return { ...generation, requester: `${platform}:${requester}` };
}

const SOURCE = /^[a-z][a-z0-9_-]{0,31}$/;

/** The answer's ballots, one per dimension in DIMENSIONS order, each checked as a vote. */
function answerBallots(answer: Answer): Ballot[] {
  if (typeof answer !== "object" || answer === null) {
    throw new UserError("USAGE", "an answer needs a generation id, a rater and scores");
  }
  const scores = answer.scores;
  if (typeof scores !== "object" || scores === null) {
    throw new UserError("USAGE", "an answer needs scores by dimension");
  }
  for (const dimension of Object.keys(scores)) {
    if (!DIMENSIONS.includes(dimension as Dimension)) {
      throw new UserError(
        "USAGE",
        `dimension "${dimension}" is not one of ${DIMENSIONS.join(", ")}`,
      );
    }
  }
  const ballots = DIMENSIONS.filter((dimension) => scores[dimension] !== undefined).map(
    (dimension): Ballot => ({
      generationId: answer.generationId,
      rater: answer.rater,
      dimension,
      score: scores[dimension] as number,
      ...(answer.source !== undefined ? { source: answer.source } : {}),
      ...(answer.at !== undefined ? { at: answer.at } : {}),
      // Per dimension: a change id (and log key) is unique per change.
      ...(answer.eventId !== undefined ? { eventId: `${answer.eventId}/${dimension}` } : {}),
    }),
  );
  if (ballots.length === 0) throw new UserError("USAGE", "an answer needs at least one score");
  if (answer.eventId !== undefined && answer.at === undefined) {
    // Without its time a redelivery would be stamped anew and sort as a later change.
    throw new UserError("USAGE", "an answer with an event id needs its time (at)");
  }
  for (const ballot of ballots) checkVote(ballot);
  return ballots;
}

function checkVote(vote: Ballot): void {
  if (vote.source !== undefined && (typeof vote.source !== "string" || !SOURCE.test(vote.source))) {
    throw new UserError(
      "USAGE",
      `vote source "${String(vote.source)}" must be a lowercase name ("discord", "reconcile")`,
    );
  }
  if (typeof vote.generationId !== "string" || vote.generationId === "") {
    throw new UserError("USAGE", "a vote needs a generation id");
  }
  if (typeof vote.rater !== "string" || vote.rater === "") {
    throw new UserError("USAGE", "a vote needs a rater");
  }
  if (!DIMENSIONS.includes(vote.dimension)) {
    throw new UserError(
      "USAGE",
      `dimension "${String(vote.dimension)}" is not one of ${DIMENSIONS.join(", ")}`,
    );
  }
  if (!Number.isInteger(vote.score) || vote.score < 1 || vote.score > 4) {
    throw new UserError("USAGE", `score ${String(vote.score)} is not a whole number from 1 to 4`);
  }
  if (
    vote.at !== undefined &&
    (!ISO_TIME.test(String(vote.at)) || new Date(vote.at).toISOString() !== vote.at)
  ) {
    throw new UserError(
      "USAGE",
      `vote time "${String(vote.at)}" is not an ISO 8601 UTC time like 2026-01-01T12:00:00.000Z`,
    );
  }
  if (
    vote.eventId !== undefined &&
    (typeof vote.eventId !== "string" || vote.eventId === "" || vote.eventId.length > 200)
  ) {
    throw new UserError("USAGE", "a vote's event id must be 1 to 200 characters");
  }
}

/** Date.prototype.toISOString's form: times of that form sort as strings in time order. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
