/**
 * The key-value layer under the vote store: keyv for values (get, set, delete, serialization)
 * on every backend, plus one thing keyv does not give efficiently: listing the keys under a
 * prefix, in key order, page by page.
 *
 * keyv's own iterator is not used for that: @keyv/sqlite's pages with `LIKE ? LIMIT ? OFFSET ?`
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
 * only while a guard key still holds the version the caller read, in one atomic step:
 *   - Redis: one Lua script (GET the guard, compare, then SET/DEL and ZADD/ZREM); scripts run alone.
 *   - PostgreSQL: one statement: `INSERT … ON CONFLICT DO UPDATE … WHERE value = <read version>` on
 *     the guard row (the WHERE is re-checked under the row lock against the committed version), with
 *     the other writes in data-modifying CTEs that run only when that upsert returned its row.
 *   - SQLite: one multi-row `INSERT … SELECT … WHERE <guard unchanged>` (the guard row last), then
 *     deletes conditioned on the guard now holding this commit's version. SQLite has one writer at a
 *     time; a later commit that read this one's version writes every key again.
 *   - Memory: checked and written with no `await` in between.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import KeyvPostgres from "@keyv/postgres";
import KeyvRedis, { createClient } from "@keyv/redis";
import KeyvSqlite from "@keyv/sqlite";
import { Keyv } from "keyv";
import { ConfigError } from "../errors.js";
import type { Logger } from "../types.js";

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
   * Atomically, when `guard.key` still holds `guard.version` (undefined: absent): sets it to
   * `guard.value` and applies `writes`. False, writing nothing, when another writer changed the
   * guard first: the caller reads again and retries (optimistic concurrency across processes).
   * Write keys are distinct and differ from the guard's.
   */
  commit(guard: Guard, writes: readonly KvWrite[]): Promise<boolean>;
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

/** One write of a commit: `value` to set, or (`value` undefined) a delete; `collection` as in set(). */
export interface KvWrite {
  key: string;
  value?: unknown;
  collection?: string;
}

/** A commit as a backend runs it: prefixed keys, serialized values (undefined: delete). */
interface RawCommit {
  guard: { key: string; version: string | undefined; raw: string };
  writes: Array<{ key: string; raw: string | undefined; collection: string | undefined }>;
}

/** A backend's raw read and atomic commit, on physical (prefixed) keys. */
interface Atomic {
  read(key: string): Promise<string | undefined>;
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
    const raw = await this.atomic.read(this.prefix + key);
    if (raw === undefined) return { value: undefined, version: undefined };
    return { value: (JSON.parse(raw) as { value?: T }).value, version: raw };
  }

  async commit(guard: Guard, writes: readonly KvWrite[]): Promise<boolean> {
    const serialize = async (value: unknown) =>
      (await this.keyv.serializeData({ value, expires: undefined })) as string;
    return this.atomic.commit({
      guard: {
        key: this.prefix + guard.key,
        version: guard.version,
        // Plain JSON in keyv's envelope: a guard is read only by getVersioned, and keyv's own
        // serializer (which also escapes Buffers) costs more per vote than the writes themselves.
        raw: JSON.stringify({ value: guard.value, expires: null }),
      },
      writes: await Promise.all(
        writes.map(async (write) => ({
          key: this.prefix + write.key,
          raw: write.value === undefined ? undefined : await serialize(write.value),
          collection: write.collection,
        })),
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
    read: async (key) => map.get(key),
    commit: async ({ guard, writes }) => {
      if (map.get(guard.key) !== guard.version) return false;
      map.set(guard.key, guard.raw);
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
  options: { table: string; prefix: string; logger?: Logger },
): Promise<Kv> {
  if (!TABLE.test(options.table)) throw badTable(options.table);
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (error) {
    throw new ConfigError(
      `votes.storeUrl (IMAGINE_VOTE_STORE): cannot create the folder for ${file}: ${(error as Error).message}`,
    );
  }
  const store = new KeyvSqlite({
    uri: `sqlite://${file}`,
    table: options.table,
    busyTimeout: 10_000,
  });
  store.on("error", () => {}); // surfaced by the query below
  try {
    // WAL: readers do not block the writer; NORMAL sync is durable across process crashes.
    await whileBusy(() => store.query("PRAGMA journal_mode = WAL"));
    await store.query("PRAGMA synchronous = NORMAL");
  } catch (error) {
    await store.close().catch(() => {});
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
    read: async (key) => {
      const rows = (await store.query(`SELECT value FROM ${table} WHERE key = ?`, key)) as {
        value: string;
      }[];
      return rows[0]?.value;
    },
    commit: async ({ guard, writes }) => {
      // The guard row last: whether the condition is evaluated once or per row, it sees the
      // guard as it was before this statement.
      const sets = [...writes.filter((write) => write.raw !== undefined), guard];
      const rows = (await store.query(
        `INSERT INTO ${table} (key, value) SELECT column1, column2 FROM (VALUES ${sets.map(() => "(?, ?)").join(", ")}) WHERE (SELECT value FROM ${table} WHERE key = ?) IS ? ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING key`,
        ...sets.flatMap((write) => [write.key, write.raw]),
        guard.key,
        guard.version ?? null,
      )) as unknown[];
      if (rows.length === 0) return false;
      const deletes = writes.filter((write) => write.raw === undefined).map((write) => write.key);
      if (deletes.length > 0) {
        // Only while the guard still holds this commit: a later commit wrote these keys itself.
        await store.query(
          `DELETE FROM ${table} WHERE key IN (${deletes.map(() => "?").join(", ")}) AND (SELECT value FROM ${table} WHERE key = ?) = ?`,
          ...deletes,
          guard.key,
          guard.raw,
        );
      }
      return true;
    },
  };
  return new KeyvKv("sqlite", keyv, options.prefix, readPage, () => store.close(), claim, atomic);
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
    read: async (key) => {
      const rows = (await store.query(`SELECT value FROM ${qualified} WHERE key = $1`, [key])) as {
        value: string;
      }[];
      return rows[0]?.value;
    },
    commit: async ({ guard, writes }) => {
      const sets = writes.filter((write) => write.raw !== undefined);
      const deletes = writes.filter((write) => write.raw === undefined).map((write) => write.key);
      // One statement, so one transaction. A concurrent commit of the same guard waits on its row
      // lock and re-checks the WHERE against the committed version: exactly one of them wins.
      // An absent guard ($3 null) is taken only by inserting it: an existing row never matches.
      const rows = (await store.query(
        `WITH cas AS (INSERT INTO ${qualified} AS guard (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE guard.value IS NOT DISTINCT FROM $3::text RETURNING 1),
         sets AS (INSERT INTO ${qualified} (key, value) SELECT k, v FROM unnest($4::text[], $5::text[]) AS w(k, v) WHERE EXISTS (SELECT 1 FROM cas) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value),
         deletes AS (DELETE FROM ${qualified} WHERE key = ANY($6::text[]) AND EXISTS (SELECT 1 FROM cas))
         SELECT count(*)::int AS won FROM cas`,
        [
          guard.key,
          guard.raw,
          guard.version ?? null,
          sets.map((write) => write.key),
          sets.map((write) => write.raw),
          deletes,
        ],
      )) as { won: number }[];
      return (rows[0]?.won ?? 0) > 0;
    },
  };
  return new KeyvKv("postgres", keyv, options.prefix, readPage, release, claim, atomic);
}

type RedisClient = ReturnType<typeof createClient>;

/**
 * The Redis commit: KEYS[1] is the guard, then per write its value key and its collection's
 * index key; ARGV[1] "1" when the guard must be absent, ARGV[2] the version read, ARGV[3] the
 * guard's new value, then per write: "s" (set) or "d" (delete), the value, the index member ("" for
 * none). A script runs alone on the server, so nothing can change the guard between GET and SET.
 */
const COMMIT_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
for j = 0, (#KEYS - 1) / 2 - 1 do
  local key, index = KEYS[2 + 2 * j], KEYS[3 + 2 * j]
  local op, value, member = ARGV[4 + 3 * j], ARGV[5 + 3 * j], ARGV[6 + 3 * j]
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
    read: async (key) => (await client.get(key)) ?? undefined,
    commit: async ({ guard, writes }) => {
      const keys = [guard.key];
      const args = [guard.version === undefined ? "1" : "0", guard.version ?? "", guard.raw];
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
