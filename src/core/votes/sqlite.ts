/**
 * keyv's store on SQLite through better-sqlite3: the same table as @keyv/sqlite (`key
 * VARCHAR(255) PRIMARY KEY, value TEXT`), so files written by earlier versions open unchanged.
 *
 * Why a synchronous driver: node-sqlite3 sends every statement through libuv's thread pool and
 * back, 10–36 ms per statement under 50 concurrent web raters on two cores, while the statement
 * itself takes tens of microseconds (WAL, a primary-key lookup or a one-row upsert). better-sqlite3
 * runs it on the calling thread: no queueing behind other work, no wake-up of a pool thread. A
 * commit with `synchronous = NORMAL` does not fsync, so the event loop is not held on the disk.
 * What can hold it is another process's write lock (several processes on one file): SQLite's busy
 * handler then waits up to `busyTimeoutMs` on this thread, as long as one writer's transaction —
 * microseconds for the statements this store runs.
 *
 * Checkpoints (copying the WAL back into the database file, with an fsync) run on a worker thread
 * of their own instead: SQLite's automatic checkpoint would run inside whichever commit crosses
 * 1000 WAL pages, holding the event loop 5–17 ms on this machine's disk every few hundred commits.
 *
 * Every method is async only to fit keyv's contract; the work is done before it returns.
 */
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";

/** Prepared statements kept per SQL text, the oldest dropped first: the vote store's statements
 * are a small fixed set (the IN lists of a multi-key read or commit vary by length, still a few
 * dozen). */
const STATEMENT_CACHE_SIZE = 128;

/** Writes between two background checkpoints: a few hundred WAL pages, as SQLite's default of
 * 1000 pages would allow (a vote commit writes a few pages). */
const CHECKPOINT_EVERY_WRITES = 200;

/** The checkpointer: its own connection to the file, a PASSIVE checkpoint on each request
 * (never waits for readers or writers; what it cannot copy now, the next one does). */
const CHECKPOINTER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: workerData.busyTimeoutMs });
parentPort.on("message", () => {
  let failure;
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (error) {
    failure = String(error && error.message);
  }
  parentPort.postMessage({ failure });
});
`;

export interface SqliteKeyvStoreOptions {
  file: string;
  table: string;
  busyTimeoutMs: number;
}

export class SqliteKeyvStore extends EventEmitter {
  readonly ttlSupport = false;
  namespace?: string;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly table: string;
  /** Whether checkpoints are this store's own (SQLite's automatic ones off). */
  private checkpointsInBackground = false;
  /** Started at the first checkpoint: a process that only reads (most CLI commands) never pays for
   * a thread. */
  private checkpointer?: Worker;
  private checkpointing = false;
  private writesSinceCheckpoint = 0;

  constructor(private readonly options: SqliteKeyvStoreOptions) {
    super();
    this.table = options.table;
    this.db = new Database(options.file, { timeout: options.busyTimeoutMs });
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS ${this.table}(key VARCHAR(255) PRIMARY KEY, value TEXT )`,
    );
  }

  /**
   * Moves checkpoints off the event loop's thread (call once the file is in WAL mode). Should the
   * thread fail, SQLite's own automatic checkpoints take over again: nothing grows unbounded.
   */
  checkpointInBackground(): void {
    this.checkpointsInBackground = true;
    this.db.pragma("wal_autocheckpoint = 0");
  }

  private startCheckpointer(): Worker {
    const worker = new Worker(CHECKPOINTER_SOURCE, {
      eval: true,
      workerData: {
        driver: createRequire(import.meta.url).resolve("better-sqlite3"),
        file: this.options.file,
        busyTimeoutMs: this.options.busyTimeoutMs,
      },
    });
    worker.unref(); // a pending checkpoint never keeps the process alive
    worker.on("message", (reply: { failure?: string }) => {
      this.checkpointing = false;
      if (reply.failure === undefined) this.emit("checkpoint");
      else this.emit("checkpointError", new Error(reply.failure));
    });
    worker.on("error", (error) => {
      this.stopBackgroundCheckpoints();
      this.emit("checkpointError", error);
    });
    return worker;
  }

  private stopBackgroundCheckpoints(): void {
    if (!this.checkpointsInBackground) return;
    this.checkpointsInBackground = false;
    this.checkpointing = false;
    void this.checkpointer?.terminate();
    this.checkpointer = undefined;
    if (this.db.open) this.db.pragma("wal_autocheckpoint = 1000");
  }

  private wrote(): void {
    if (!this.checkpointsInBackground || this.checkpointing) return;
    if (++this.writesSinceCheckpoint < CHECKPOINT_EVERY_WRITES) return;
    this.writesSinceCheckpoint = 0;
    this.checkpointing = true;
    this.checkpointer ??= this.startCheckpointer();
    this.checkpointer.postMessage("checkpoint");
  }

  /** Runs one statement; rows for a statement that returns any (SELECT, RETURNING), else []. */
  async query(sql: string, ...parameters: unknown[]): Promise<unknown[]> {
    return this.querySync(sql, parameters);
  }

  querySync(sql: string, parameters: readonly unknown[] = []): unknown[] {
    const statement = this.prepare(sql);
    let rows: unknown[] = [];
    if (statement.reader) rows = statement.all(...parameters);
    else statement.run(...parameters);
    if (!statement.readonly) this.wrote();
    return rows;
  }

  async get(key: string): Promise<string | undefined> {
    const row = this.prepare(`SELECT value FROM ${this.table} WHERE key = ?`).get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  async getMany(keys: string[]): Promise<(string | undefined)[]> {
    const rows = this.prepare(
      `SELECT key, value FROM ${this.table} WHERE key IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(keys)) as { key: string; value: string }[];
    const byKey = new Map(rows.map((row) => [row.key, row.value]));
    return keys.map((key) => byKey.get(key));
  }

  async set(key: string, value: string): Promise<void> {
    this.prepare(
      `INSERT INTO ${this.table} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ).run(key, value);
    this.wrote();
  }

  async delete(key: string): Promise<boolean> {
    const deleted = this.prepare(`DELETE FROM ${this.table} WHERE key = ?`).run(key);
    this.wrote();
    return deleted.changes > 0;
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    const deleted = this.prepare(
      `DELETE FROM ${this.table} WHERE key IN (SELECT value FROM json_each(?))`,
    ).run(JSON.stringify(keys));
    this.wrote();
    return deleted.changes > 0;
  }

  async has(key: string): Promise<boolean> {
    return this.prepare(`SELECT 1 FROM ${this.table} WHERE key = ?`).get(key) !== undefined;
  }

  /** keyv's clear(): this store's namespace only (the vote store has none, so every row). */
  async clear(): Promise<void> {
    if (this.namespace === undefined) this.prepare(`DELETE FROM ${this.table}`).run();
    else {
      this.prepare(`DELETE FROM ${this.table} WHERE substr(key, 1, ?) = ?`).run(
        this.namespace.length + 1,
        `${this.namespace}:`,
      );
    }
    this.wrote();
  }

  async disconnect(): Promise<void> {
    this.close();
  }

  close(): void {
    this.stopBackgroundCheckpoints();
    if (this.db.open) this.db.close(); // the last connection to close checkpoints what is left
  }

  private prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.statements.keys().next().value as string;
        this.statements.delete(oldest);
      }
      this.statements.set(sql, statement);
    }
    return statement;
  }
}
