/**
 * The key-value layer under the vote store: keyv for values (get, set, delete, serialization)
 * on every backend, plus one thing keyv does not give efficiently: listing the keys under a
 * prefix, in key order, page by page.
 *
 * keyv's own iterator is not used for that: @keyv/sqlite's paged with `LIKE ? LIMIT ? OFFSET ?`
 * (a full scan per page, so quadratic; unordered; LIKE is case-insensitive and treats `_` as a
 * wildcard), @keyv/redis's is a SCAN of the whole keyspace per call (unordered, ten keys per
 * round trip). Instead:
 *   - SQLite and PostgreSQL: keyset pagination on the primary key of keyv's table,
 *     `key > after AND key < end ORDER BY key LIMIT n` (PostgreSQL with COLLATE "C" and an index
 *     for it, so the order is bytewise whatever the database's collation).
 *   - Redis: a sorted set per listed collection (all members score 0, so ZRANGE BYLEX pages
 *     them in byte order), written in the same MULTI/EXEC transaction as the value. ZADD and ZREM
 *     are single server-side operations: two clients adding different members never lose one.
 *   - Memory (tests): the keys of keyv's Map, sorted.
 * No backend needs a read-modify-write of a shared record to keep its indices.
 *
 * Keys are ASCII (the store encodes every component with encodeURIComponent), so JavaScript,
 * SQLite BINARY, PostgreSQL "C" and Redis lexicographic order all agree.
 *
 * `claim` (claimOnce's primitive) is one atomic server-side operation on every backend, so two
 * processes can never both win a key:
 *   - Redis: `SET key value NX PX ttl` (the server expires it).
 *   - SQLite / PostgreSQL: `INSERT … ON CONFLICT (key) DO UPDATE SET value = new WHERE <the stored
 *     claim has expired> RETURNING key`: a row comes back only when the key was free or expired.
 *     PostgreSQL locks the conflicting row and re-checks the WHERE on the committed version, so
 *     concurrent claims of one key return exactly one row; SQLite runs one writer at a time.
 *     Expired claims are deleted now and then (every CLAIM_PURGE_EVERY claims of a process).
 *   - Memory: a map checked and written in one synchronous step.
 * The stored value is keyv's format (`{"value":…,"expires":ms}`), so keyv reads it as expired.
 *
 * `commit` (the vote store's per-vote compare-and-set, see ./README.md) writes several keys at once
 * only while every guard key still holds the version the caller read, in one atomic step (one
 * guard per vote: a web answer commits both of its dimensions' votes together or neither):
 *   - Redis: one Lua script (GET the guards, compare, then SET/DEL and ZADD/ZREM); scripts run alone.
 *   - PostgreSQL: one statement: `INSERT … ON CONFLICT DO UPDATE … WHERE value = <read version>` on
 *     the guard rows (the WHERE is re-checked under the row lock against the committed version), with
 *     the other writes in data-modifying CTEs that run only when every guard's upsert returned its
 *     row; when only some did, the statement fails on purpose (a division by zero) so that those
 *     are rolled back with it, and the commit reports a lost race.
 *   - SQLite: one multi-row `INSERT … SELECT … WHERE <guards unchanged>` (the guard rows last; the
 *     SELECT reads the table it inserts into, so SQLite computes all its rows, condition included,
 *     before inserting any), then deletes each conditioned on its guard now holding this commit's
 *     version. SQLite has one writer at a time; a later commit that read this one's version of a
 *     guard writes every key of that guard again.
 *   - Memory: checked and written with no `await` in between.
 * A commit may also require keys to be absent (checked in the same step: `NOT EXISTS` in the
 * SQL condition, `EXISTS` in the script), so a writer that expects nothing there can commit
 * without reading first. `getVersionedMany` reads the guards and the values a commit depends on
 * in one round trip (`key IN (…)`, `key = ANY(…)`, MGET).
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import KeyvPostgres from "@keyv/postgres";
import KeyvRedis, { createClient } from "@keyv/redis";
import { Keyv } from "keyv";
import { ConfigError } from "../errors.js";
import type { Logger } from "../types.js";
import { SqliteKeyvStore } from "./sqlite.js";

export interface Kv {
  readonly backend: "memory" | "sqlite" | "redis" | "postgres";
  get<T>(key: string): Promise<T | undefined>;
  /**
   * Stores a value. `collection`, when given, is the prefix under which list() must find the key
   * (a prefix of the key ending in "/"); keys that are never listed pass none.
   */
  set(key: string, value: unknown, collection?: string): Promise<void>;
  delete(key: string, collection?: string): Promise<void>;
  /**
   * Entries whose key starts with `collection`, in key order, fetched `pageSize` at a time;
   * with `after`, only keys greater than it.
   */
  list<T>(collection: string, pageSize?: number, after?: string): AsyncIterable<[string, T]>;
  /**
   * Atomically takes `key` for `ttlMs` milliseconds: true when it was free or its claim had
   * expired (by `nowMs`; Redis uses its own clock), false while someone else's claim holds.
   * Claim keys are never listed.
   */
  claim(key: string, ttlMs: number, nowMs: number): Promise<boolean>;
  /**
   * A guard's value with its version for commit(): the stored form, undefined when the key is
   * absent. Only for keys written as commit() guards (plain JSON, not keyv's serializer).
   */
  getVersioned<T>(key: string): Promise<Versioned<T>>;
  /**
   * In one read: guards as getVersioned gives them, and plain values (written by set or commit)
   * as get gives them, each in the order asked.
   */
  getVersionedMany<T>(
    guardKeys: readonly string[],
    valueKeys: readonly string[],
  ): Promise<{ guards: Versioned<T>[]; values: unknown[] }>;
  /**
   * Atomically, when every guard's key still holds its `version` (undefined: absent): sets each
   * to its `value` and applies `writes`. False, writing nothing, when another writer changed a
   * guard first: the caller reads again and retries (optimistic concurrency across processes).
   * At least one guard; guard and write keys are all distinct. `absent`: keys other than the
   * guards (written by set or commit) that must not exist before the commit for it to apply; the
   * writes may set them.
   */
  commit(
    guards: readonly Guard[],
    writes: readonly KvWrite[],
    absent?: readonly string[],
  ): Promise<boolean>;
  close(): Promise<void>;
}

export interface Versioned<T> {
  value: T | undefined;
  version: string | undefined;
}

export interface Guard {
  key: string;
  version: string | undefined;
  value: unknown;
}

/**
 * One write of a commit: `value` to set, or (`value` undefined) a delete; `collection` as in
 * set(). `guard`: the key of the guard whose change the write belongs to (default: the first).
 */
export interface KvWrite {
  key: string;
  value?: unknown;
  collection?: string;
  guard?: string;
}

/** A commit as a backend runs it: prefixed keys, serialized values (undefined: delete). */
interface RawCommit {
  guards: Array<{ key: string; version: string | undefined; raw: string }>;
  /** Keys that must not exist (checked only). */
  absent: string[];
  writes: Array<{
    key: string;
    raw: string | undefined;
    collection: string | undefined;
    /** The index in `guards` of the guard the write belongs to. */
    guard: number;
  }>;
}

/** A backend's raw read and atomic commit, on physical (prefixed) keys. */
interface Atomic {
  /** The stored forms of `keys`, in order (undefined: absent), in one round trip. */
  read(keys: readonly string[]): Promise<Array<string | undefined>>;
  commit(commit: RawCommit): Promise<boolean>;
}

/** How many claims (per process) between two deletions of expired claims on SQL backends. */
const CLAIM_PURGE_EVERY = 256;

/** A claim's stored value, in keyv's serialized form so keyv would read it as expired. */
function claimValue(nowMs: number, ttlMs: number): string {
  return JSON.stringify({ value: { claimedAt: nowMs }, expires: nowMs + ttlMs });
}

/**
 * The SQL backends' claim: one upsert that only overwrites an expired claim and returns a row
 * when it wrote. `purge` deletes expired claims under `claimPrefix` now and then.
 */
function sqlClaimer(
  upsert: (key: string, value: string, nowMs: number) => Promise<unknown[]>,
  purge: (nowMs: number) => Promise<unknown>,
  logger?: Logger,
): (key: string, ttlMs: number, nowMs: number) => Promise<boolean> {
  let claims = 0;
  return async (key, ttlMs, nowMs) => {
    const rows = await upsert(key, claimValue(nowMs, ttlMs), nowMs);
    claims += 1;
    if (claims % CLAIM_PURGE_EVERY === 0) {
      // One range delete now and then keeps the table from growing with every Slack event id.
      await purge(nowMs).catch((error: unknown) =>
        logger?.warn({ err: error }, "vote store: deleting expired claims failed"),
      );
    }
    return rows.length > 0;
  };
}

/** One page of raw (serialized) entries after `after` (exclusive), in key order. */
type PageReader = (
  physicalCollection: string,
  after: string | undefined,
  limit: number,
) => Promise<Array<[string, string | undefined]>>;

const DEFAULT_PAGE = 500;

/** Where the vote store keeps claims (claimOnce); the SQL purge deletes only under it. */
export const CLAIM_COLLECTION = "claim/";

/** The smallest string greater than every string that starts with `prefix`. */
function prefixEnd(prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

function versioned<T>(raw: string | undefined | null): Versioned<T> {
  if (raw === undefined || raw === null) return { value: undefined, version: undefined };
  return { value: (JSON.parse(raw) as { value?: T }).value, version: raw };
}

function newKeyv(store: unknown, logger?: Logger): Keyv {
  // No keyv namespace: the store adds its own prefix, identical on every backend.
  const keyv = new Keyv({ store, namespace: undefined, useKeyPrefix: false, throwOnErrors: true });
  keyv.on("error", (error: unknown) => logger?.warn({ err: error }, "vote store backend error"));
  return keyv;
}

class KeyvKv implements Kv {
  private closed = false;

  constructor(
    readonly backend: Kv["backend"],
    protected readonly keyv: Keyv,
    protected readonly prefix: string,
    private readonly readPage: PageReader,
    private readonly onClose: () => Promise<void>,
    /** The backend's atomic claim, on the physical (prefixed) key. */
    private readonly claimPhysical: (key: string, ttlMs: number, nowMs: number) => Promise<boolean>,
    private readonly atomic: Atomic,
  ) {}

  async getVersioned<T>(key: string): Promise<Versioned<T>> {
    const [raw] = await this.atomic.read([this.prefix + key]);
    return versioned<T>(raw);
  }

  async getVersionedMany<T>(
    guardKeys: readonly string[],
    valueKeys: readonly string[],
  ): Promise<{ guards: Versioned<T>[]; values: unknown[] }> {
    const raws = await this.atomic.read(
      [...guardKeys, ...valueKeys].map((key) => this.prefix + key),
    );
    const values = await Promise.all(
      raws.slice(guardKeys.length).map(async (raw) => {
        if (raw === undefined || raw === null) return undefined;
        return (await this.keyv.deserializeData<unknown>(raw))?.value ?? undefined;
      }),
    );
    return { guards: raws.slice(0, guardKeys.length).map((raw) => versioned<T>(raw)), values };
  }

  async commit(
    guards: readonly Guard[],
    writes: readonly KvWrite[],
    absent: readonly string[] = [],
  ): Promise<boolean> {
    if (guards.length === 0) throw new Error("vote store: a commit needs at least one guard");
    const serialize = async (value: unknown) =>
      (await this.keyv.serializeData({ value, expires: undefined })) as string;
    return this.atomic.commit({
      guards: guards.map((guard) => ({
        key: this.prefix + guard.key,
        version: guard.version,
        // Plain JSON in keyv's envelope: a guard is read only by getVersioned, and keyv's own
        // serializer (which also escapes Buffers) costs more per vote than the writes themselves.
        raw: JSON.stringify({ value: guard.value, expires: null }),
      })),
      absent: absent.map((key) => this.prefix + key),
      writes: await Promise.all(
        writes.map(async (write) => {
          const guard =
            write.guard === undefined ? 0 : guards.findIndex((g) => g.key === write.guard);
          if (guard < 0)
            throw new Error(`vote store: write ${write.key} names no guard of its commit`);
          return {
            key: this.prefix + write.key,
            raw: write.value === undefined ? undefined : await serialize(write.value),
            collection: write.collection,
            guard,
          };
        }),
      ),
    });
  }

  claim(key: string, ttlMs: number, nowMs: number): Promise<boolean> {
    return this.claimPhysical(this.prefix + key, ttlMs, nowMs);
  }

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.keyv.get<T>(this.prefix + key)) ?? undefined;
  }

  async set(key: string, value: unknown, _collection?: string): Promise<void> {
    await this.keyv.set(this.prefix + key, value);
  }

  async delete(key: string, _collection?: string): Promise<void> {
    await this.keyv.delete(this.prefix + key);
  }

  async *list<T>(
    collection: string,
    pageSize = DEFAULT_PAGE,
    start?: string,
  ): AsyncIterable<[string, T]> {
    const physical = this.prefix + collection;
    let after = start === undefined ? undefined : this.prefix + start;
    for (;;) {
      const page = await this.readPage(physical, after, pageSize);
      for (const [key, raw] of page) {
        if (raw === undefined || raw === null) continue;
        const data = await this.keyv.deserializeData<T>(raw);
        if (data?.value !== undefined) yield [key.slice(this.prefix.length), data.value];
      }
      if (page.length < pageSize) return;
      after = (page[page.length - 1] as [string, unknown])[0];
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.onClose();
  }
}

export function openMemoryKv(logger?: Logger): Kv {
  const map = new Map<string, string>();
  const keyv = newKeyv(map, logger);
  const readPage: PageReader = async (collection, after, limit) => {
    const keys = [...map.keys()]
      .filter((key) => key.startsWith(collection) && (after === undefined || key > after))
      .sort()
      .slice(0, limit);
    return keys.map((key) => [key, map.get(key)]);
  };
  // Checked and written without an await in between: nothing else runs in the meantime.
  const claims = new Map<string, number>();
  const claim = async (key: string, ttlMs: number, nowMs: number) => {
    const expires = claims.get(key);
    if (expires !== undefined && expires > nowMs) return false;
    claims.set(key, nowMs + ttlMs);
    return true;
  };
  const atomic: Atomic = {
    read: async (keys) => keys.map((key) => map.get(key)),
    commit: async ({ guards, absent, writes }) => {
      if (guards.some((guard) => map.get(guard.key) !== guard.version)) return false;
      if (absent.some((key) => map.has(key))) return false;
      for (const guard of guards) map.set(guard.key, guard.raw);
      for (const write of writes) {
        if (write.raw === undefined) map.delete(write.key);
        else map.set(write.key, write.raw);
      }
      return true;
    },
  };
  return new KeyvKv("memory", keyv, "", readPage, async () => {}, claim, atomic);
}

const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Runs `query` again while SQLite answers SQLITE_BUSY, for up to about 10 s. Switching a new file
 * to WAL needs it to itself, and SQLite does not call the busy handler for that: processes (or
 * stores) opening one new file at the same moment would otherwise fail to start.
 */
async function whileBusy<T>(query: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await query();
    } catch (error) {
      if ((error as { code?: unknown }).code !== "SQLITE_BUSY" || attempt >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(10 * attempt, 200)));
    }
  }
}

export async function openSqliteKv(
  file: string,
  options: { table: string; prefix: string; logger?: Logger; synchronous?: "normal" | "full" },
): Promise<Kv> {
  if (!TABLE.test(options.table)) throw badTable(options.table);
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (error) {
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): cannot create the folder for ${file}: ${(error as Error).message}`,
    );
  }
  let store: SqliteKeyvStore;
  try {
    // Opened again while SQLite answers SQLITE_BUSY: the table's creation or the switch to WAL of
    // a new file that another process is opening at the same moment.
    store = await whileBusy(async () => {
      const opening = new SqliteKeyvStore({ file, table: options.table, busyTimeoutMs: 10_000 });
      try {
        // WAL: readers do not block the writer. A commit is in the WAL file (the OS's page cache)
        // before it returns, so a killed process (kill -9) loses nothing acknowledged under either
        // setting. NORMAL syncs the WAL to disk only at checkpoints: a power loss or OS crash can
        // undo the latest commits (never corrupt the file). FULL syncs at every commit: durable
        // across a power loss too, for one fsync per commit (on the event loop's thread: the
        // driver is synchronous, see ./sqlite.ts).
        opening.querySync("PRAGMA journal_mode = WAL");
        opening.querySync(
          `PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`,
        );
        opening.on("checkpointError", (error: Error) =>
          options.logger?.warn({ err: error }, "SQLite vote store: background checkpoint failed"),
        );
        opening.checkpointInBackground();
        return opening;
      } catch (error) {
        opening.close();
        throw error;
      }
    });
  } catch (error) {
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): cannot open the SQLite vote store ${file}: ${(error as Error).message}`,
    );
  }
  const keyv = newKeyv(store, options.logger);
  const table = options.table;
  const readPage: PageReader = async (collection, after, limit) => {
    const rows = (await store.query(
      `SELECT key, value FROM ${table} WHERE key > ? AND key < ? ORDER BY key LIMIT ?`,
      after ?? collection,
      prefixEnd(collection),
      limit,
    )) as { key: string; value: string }[];
    return rows.map((row) => [row.key, row.value]);
  };
  const claimPrefix = `${options.prefix}${CLAIM_COLLECTION}`;
  const claim = sqlClaimer(
    (key, value, nowMs) =>
      store.query(
        `INSERT INTO ${table} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE CAST(json_extract(${table}.value, '$.expires') AS INTEGER) <= ? RETURNING key`,
        key,
        value,
        nowMs,
      ) as Promise<unknown[]>,
    (nowMs) =>
      store.query(
        `DELETE FROM ${table} WHERE key > ? AND key < ? AND CAST(json_extract(value, '$.expires') AS INTEGER) <= ?`,
        claimPrefix,
        prefixEnd(claimPrefix),
        nowMs,
      ),
    options.logger,
  );
  const atomic: Atomic = {
    read: async (keys) => {
      const rows = (await store.query(
        `SELECT key, value FROM ${table} WHERE key IN (${keys.map(() => "?").join(", ")})`,
        ...keys,
      )) as { key: string; value: string }[];
      const byKey = new Map(rows.map((row) => [row.key, row.value]));
      return keys.map((key) => byKey.get(key));
    },
    commit: async ({ guards, absent, writes }) => {
      // The guard rows last: had SQLite evaluated the condition per row, it would still see the
      // guards as they were before this statement.
      const sets = [...writes.filter((write) => write.raw !== undefined), ...guards];
      const conditions = [
        ...guards.map(() => `(SELECT value FROM ${table} WHERE key = ?) IS ?`),
        ...absent.map(() => `NOT EXISTS (SELECT 1 FROM ${table} WHERE key = ?)`),
      ];
      const rows = (await store.query(
        `INSERT INTO ${table} (key, value) SELECT column1, column2 FROM (VALUES ${sets.map(() => "(?, ?)").join(", ")}) WHERE ${conditions.join(" AND ")} ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING key`,
        ...sets.flatMap((write) => [write.key, write.raw]),
        ...guards.flatMap((guard) => [guard.key, guard.version ?? null]),
        ...absent,
      )) as unknown[];
      if (rows.length === 0) return false;
      const deletes = writes.filter((write) => write.raw === undefined);
      if (deletes.length > 0) {
        // Each only while its guard still holds this commit: a later commit of that guard wrote
        // the key itself.
        await store.query(
          `DELETE FROM ${table} WHERE ${deletes.map(() => `(key = ? AND (SELECT value FROM ${table} WHERE key = ?) = ?)`).join(" OR ")}`,
          ...deletes.flatMap((write) => {
            const guard = guards[write.guard] as RawCommit["guards"][number];
            return [write.key, guard.key, guard.raw];
          }),
        );
      }
      return true;
    },
  };
  return new KeyvKv(
    "sqlite",
    keyv,
    options.prefix,
    readPage,
    async () => store.close(),
    claim,
    atomic,
  );
}

/**
 * @keyv/postgres keeps one pg pool per process (module state): a second store on another URL
 * would orphan the first one's pool, and closing either ends the shared pool. So stores on the
 * same URL share it, counted, and a store on a different URL is refused while one is open.
 */
const postgresPool = { uri: undefined as string | undefined, open: 0 };

export async function openPostgresKv(
  uri: string,
  options: { table: string; schema: string; prefix: string; logger?: Logger; display: string },
): Promise<Kv> {
  if (!TABLE.test(options.table)) throw badTable(options.table);
  if (!TABLE.test(options.schema)) {
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): schema "${options.schema}" must be letters, digits and _`,
    );
  }
  if (postgresPool.open > 0 && postgresPool.uri !== uri) {
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): a PostgreSQL vote store on another server is already open in this process (@keyv/postgres shares one connection pool per process); close it first`,
    );
  }
  const errors: unknown[] = [];
  const store = new KeyvPostgres({
    uri,
    table: options.table,
    schema: options.schema,
    keySize: 1024,
    connectionTimeoutMillis: 10_000,
    max: 10,
  });
  store.on("error", (error: unknown) => errors.push(error));
  postgresPool.uri = uri;
  postgresPool.open += 1;
  const release = async () => {
    postgresPool.open -= 1;
    if (postgresPool.open === 0) {
      postgresPool.uri = undefined;
      await store.disconnect();
    }
  };
  const qualified = `"${options.schema}"."${options.table}"`;
  try {
    await store.query("SELECT 1");
    // Byte-order range scans whatever the database's collation (the primary key's index uses it).
    await store.query(
      `CREATE INDEX IF NOT EXISTS "${options.table}_key_bytes" ON ${qualified} (key COLLATE "C")`,
    );
  } catch (error) {
    await release().catch(() => {});
    const cause = errors[0] ?? error;
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): cannot use the PostgreSQL vote store ${options.display}: ${(cause as Error).message ?? String(cause)}`,
      { cause },
    );
  }
  const keyv = newKeyv(store, options.logger);
  const readPage: PageReader = async (collection, after, limit) => {
    const rows = (await store.query(
      `SELECT key, value FROM ${qualified} WHERE key COLLATE "C" > $1 AND key COLLATE "C" < $2 ORDER BY key COLLATE "C" LIMIT $3`,
      [after ?? collection, prefixEnd(collection), limit],
    )) as { key: string; value: string }[];
    return rows.map((row) => [row.key, row.value]);
  };
  const claimPrefix = `${options.prefix}${CLAIM_COLLECTION}`;
  const claim = sqlClaimer(
    (key, value, nowMs) =>
      store.query(
        `INSERT INTO ${qualified} AS claims (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE (claims.value::json->>'expires')::bigint <= $3 RETURNING key`,
        [key, value, nowMs],
      ) as Promise<unknown[]>,
    (nowMs) =>
      store.query(
        `DELETE FROM ${qualified} WHERE key COLLATE "C" > $1 AND key COLLATE "C" < $2 AND (value::json->>'expires')::bigint <= $3`,
        [claimPrefix, prefixEnd(claimPrefix), nowMs],
      ),
    options.logger,
  );
  const atomic: Atomic = {
    read: async (keys) => {
      const rows = (await store.query(
        `SELECT key, value FROM ${qualified} WHERE key = ANY($1::text[])`,
        [keys],
      )) as { key: string; value: string }[];
      const byKey = new Map(rows.map((row) => [row.key, row.value]));
      return keys.map((key) => byKey.get(key));
    },
    commit: async ({ guards, absent, writes }) => {
      const sets = writes.filter((write) => write.raw !== undefined);
      const deletes = writes.filter((write) => write.raw === undefined).map((write) => write.key);
      // One statement, so one transaction. A concurrent commit of the same guard waits on its row
      // lock and re-checks the WHERE against the committed version: exactly one of them wins.
      // An absent guard (version null) is taken only by inserting it: an existing row never
      // matches. Guards are taken in key order, so two commits rarely wait on each other in a
      // cycle (PostgreSQL ends one of such a pair: a lost race, retried by the caller).
      // When only some guards matched, the last SELECT divides by zero: the statement fails and
      // PostgreSQL rolls back the guards it had already changed.
      const ordered = [...guards].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      try {
        await store.query(
          `WITH expected AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS e(key, value, version)),
           cas AS (INSERT INTO ${qualified} AS guard (key, value) SELECT key, value FROM expected ORDER BY key ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE guard.value IS NOT DISTINCT FROM (SELECT version FROM expected WHERE expected.key = guard.key) RETURNING 1),
           won AS (SELECT count(*) = $4::int AND NOT EXISTS (SELECT 1 FROM ${qualified} WHERE key = ANY($8::text[])) AS all_won FROM cas),
           sets AS (INSERT INTO ${qualified} (key, value) SELECT k, v FROM unnest($5::text[], $6::text[]) AS w(k, v) WHERE (SELECT all_won FROM won) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value),
           deletes AS (DELETE FROM ${qualified} WHERE key = ANY($7::text[]) AND (SELECT all_won FROM won))
           SELECT 1 / (CASE WHEN all_won THEN 1 ELSE 0 END) AS won FROM won`,
          [
            ordered.map((guard) => guard.key),
            ordered.map((guard) => guard.raw),
            ordered.map((guard) => guard.version ?? null),
            ordered.length,
            sets.map((write) => write.key),
            sets.map((write) => write.raw),
            deletes,
            absent,
          ],
        );
        return true;
      } catch (error) {
        // 22012: a guard had changed (the division above); 40P01: a deadlock between two commits.
        const code = (error as { code?: unknown }).code;
        if (code === "22012" || code === "40P01") return false;
        throw error;
      }
    },
  };
  return new KeyvKv("postgres", keyv, options.prefix, readPage, release, claim, atomic);
}

type RedisClient = ReturnType<typeof createClient>;

/**
 * The Redis commit: ARGV[1] is the number of guards g, ARGV[2] the number n of keys that must
 * not exist. KEYS[1..g] are the guards, KEYS[g+1..g+n] those keys (only checked), then per write
 * its value key and its collection's index key. Per guard i, ARGV[3i] "1" when it must be
 * absent, ARGV[3i + 1] the version read, ARGV[3i + 2] its new value; then per write: "s" (set)
 * or "d" (delete), the value, the index member ("" for none). A script runs alone on the server,
 * so nothing can change a guard between GET and SET.
 */
const COMMIT_SCRIPT = `
local g, n = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, g do
  local current = redis.call('GET', KEYS[i])
  if ARGV[3 * i] == '1' then
    if current then return 0 end
  elseif current ~= ARGV[3 * i + 1] then
    return 0
  end
end
for i = g + 1, g + n do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 1, g do redis.call('SET', KEYS[i], ARGV[3 * i + 2]) end
local a = 2 + 3 * g
for j = 0, (#KEYS - g - n) / 2 - 1 do
  local key, index = KEYS[g + n + 1 + 2 * j], KEYS[g + n + 2 + 2 * j]
  local op, value, member = ARGV[a + 1 + 3 * j], ARGV[a + 2 + 3 * j], ARGV[a + 3 + 3 * j]
  if op == 's' then
    redis.call('SET', key, value)
    if member ~= '' then redis.call('ZADD', index, 0, member) end
  else
    redis.call('DEL', key)
    if member ~= '' then redis.call('ZREM', index, member) end
  end
end
return 1
`;

const COMMIT_SCRIPT_SHA1 = createHash("sha1").update(COMMIT_SCRIPT).digest("hex");

function redisAtomic(client: RedisClient, prefix: string): Atomic {
  return {
    read: async (keys) => (await client.mGet([...keys])).map((raw) => raw ?? undefined),
    commit: async ({ guards, absent, writes }) => {
      const keys = [...guards.map((guard) => guard.key), ...absent];
      const args = [String(guards.length), String(absent.length)];
      for (const guard of guards) {
        args.push(guard.version === undefined ? "1" : "0", guard.version ?? "", guard.raw);
      }
      for (const write of writes) {
        const member = write.collection === undefined ? "" : write.key.slice(prefix.length);
        // Without a collection the index key is never touched; the value key stands in.
        keys.push(
          write.key,
          write.collection === undefined ? write.key : `${prefix}index:${write.collection}`,
        );
        args.push(write.raw === undefined ? "d" : "s", write.raw ?? "", member);
      }
      const options = { keys, arguments: args };
      // By digest (the script is not sent each time); once per server the whole script.
      const reply = await client.evalSha(COMMIT_SCRIPT_SHA1, options).catch((error: unknown) => {
        if (!String((error as Error).message).startsWith("NOSCRIPT")) throw error;
        return client.eval(COMMIT_SCRIPT, options);
      });
      return reply === 1;
    },
  };
}

class RedisKv extends KeyvKv {
  constructor(
    keyv: Keyv,
    prefix: string,
    private readonly client: RedisClient,
    readPage: PageReader,
    onClose: () => Promise<void>,
  ) {
    super(
      "redis",
      keyv,
      prefix,
      readPage,
      onClose,
      async (key, ttlMs, nowMs) => {
        const reply = await client.set(key, claimValue(nowMs, ttlMs), {
          condition: "NX",
          expiration: { type: "PX", value: ttlMs },
        });
        return reply === "OK";
      },
      redisAtomic(client, prefix),
    );
  }

  /** The sorted set that indexes a collection. Value keys never start with "index:". */
  indexKey(collection: string): string {
    return `${this.prefix}index:${collection}`;
  }

  override async set(key: string, value: unknown, collection?: string): Promise<void> {
    if (collection === undefined) return super.set(key, value);
    const raw = await this.keyv.serializeData({ value, expires: undefined });
    await this.client
      .multi()
      .set(this.prefix + key, raw as string)
      .zAdd(this.indexKey(collection), { score: 0, value: key })
      .exec();
  }

  override async delete(key: string, collection?: string): Promise<void> {
    if (collection === undefined) return super.delete(key);
    await this.client
      .multi()
      .del(this.prefix + key)
      .zRem(this.indexKey(collection), key)
      .exec();
  }
}

export async function openRedisKv(
  url: string,
  options: { prefix: string; logger?: Logger; display: string },
): Promise<Kv> {
  let lastError: unknown;
  let connected = false;
  const client: RedisClient = createClient({
    url,
    socket: {
      connectTimeout: 10_000,
      // Reconnect after a dropped connection (backing off up to 2 s); fail at once at start-up.
      reconnectStrategy: (retries: number, cause: Error) =>
        connected ? Math.min(100 * 2 ** retries, 2_000) : cause,
    },
  });
  client.on("error", (error: unknown) => {
    lastError = error;
    options.logger?.warn({ err: error }, "vote store: redis connection error");
  });
  try {
    await client.connect();
    connected = true;
  } catch (error) {
    try {
      client.destroy();
    } catch {
      // already closed by the failed connect
    }
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): cannot connect to Redis at ${options.display}: ${(lastError as Error | undefined)?.message ?? (error as Error).message}`,
      { cause: error },
    );
  }
  const adapter = new KeyvRedis(client, { throwOnConnectError: true, throwOnErrors: true });
  const keyv = newKeyv(adapter, options.logger);
  const prefix = options.prefix;
  let kv: RedisKv | undefined;
  const readPage: PageReader = async (collection, after, limit) => {
    const logical = collection.slice(prefix.length);
    const members = await client.zRange(
      (kv as RedisKv).indexKey(logical),
      after === undefined ? "-" : `(${after.slice(prefix.length)}`,
      "+",
      { BY: "LEX", LIMIT: { offset: 0, count: limit } },
    );
    if (members.length === 0) return [];
    const physical = members.map((member) => prefix + member);
    const values = await client.mGet(physical);
    // Keep the page length (a missing value is skipped by the caller) so paging goes on.
    return physical.map((key, i) => [key, values[i] ?? undefined]);
  };
  kv = new RedisKv(keyv, prefix, client, readPage, async () => {
    if (client.isOpen) await client.close();
  });
  return kv;
}

function badTable(table: string): ConfigError {
  return new ConfigError(
    `votes.storeUrl (IMAGINE_VOTE_STORE): table "${table}" must start with a letter or _ and hold only letters, digits and _ (at most 63)`,
  );
}
