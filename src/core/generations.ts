/**
 * Generation stores. The JSON-lines store appends one line per record to
 * `<dataDir>/generations.jsonl`; the vote store (src/core/votes) will implement the same
 * GenerationStore interface and replace it. The memory store is for tests.
 */
import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Generation, GenerationStore } from "./types.js";

export const GENERATIONS_FILE = "generations.jsonl";

/**
 * Appends each generation as one JSON line, with a single write per record (so concurrent
 * writers and a crash never leave half a record followed by another), creating the data
 * directory on first use. Records are written in the order saveGeneration was called.
 */
export class JsonlGenerationStore implements GenerationStore {
  readonly file: string;
  private ready: Promise<unknown> | undefined;
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly dataDir: string) {
    this.file = join(dataDir, GENERATIONS_FILE);
  }

  saveGeneration(generation: Generation): Promise<void> {
    const line = `${JSON.stringify(generation)}\n`;
    this.ready ??= mkdir(this.dataDir, { recursive: true });
    const ready = this.ready;
    // Chained so lines land in call order; a failed write does not block the next one.
    const write = this.tail.then(async () => {
      await ready;
      await appendFile(this.file, line, "utf8");
    });
    this.tail = write.catch(() => {});
    // A failed mkdir is retried on the next call (the disk may have been fixed).
    write.catch(() => {
      if (this.ready === ready) this.ready = undefined;
    });
    return write;
  }
}

/** Keeps generations in memory, in the order saved. */
export class MemoryGenerationStore implements GenerationStore {
  readonly generations: Generation[] = [];

  async saveGeneration(generation: Generation): Promise<void> {
    this.generations.push(structuredClone(generation));
  }
}
