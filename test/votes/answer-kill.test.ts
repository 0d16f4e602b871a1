/**
 * kill -9 of a process recording web answers into the SQLite vote store (WAL,
 * synchronous=NORMAL): every answer acknowledged before the kill is there afterwards with both
 * dimensions and their two events, and no answer is there by halves.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import type { Vote, VoteEvent } from "../../src/core/types.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { answerScores } from "./answer-scores.js";
import { sampleGeneration } from "./contract.js";

const dataDir = mkdtempSync(join(tmpdir(), "imagine-answer-kill-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill("SIGKILL");
  child = undefined;
});

it("keeps every acknowledged answer, whole, across kill -9 (SQLite)", async () => {
  const url = `sqlite://${join(dataDir, "votes.sqlite")}`;
  const setup = await openVoteStore(url, { dataDir });
  const generation = sampleGeneration();
  await setup.saveGeneration(generation);
  await setup.close();

  const writer = spawn(process.execPath, ["--import", "tsx", "test/votes/answer-child.ts"], {
    env: { PATH: process.env.PATH, VOTE_STORE_URL: url, GENERATION_ID: generation.id },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child = writer;
  let stderr = "";
  writer.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  const acked = new Set<number>();
  const exited = once(writer, "exit");
  // Killed as soon as 200 answers are acknowledged, with more in flight.
  await new Promise<void>((done, fail) => {
    let buffer = "";
    writer.stdout?.setEncoding("utf8");
    writer.stdout?.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) acked.add(Number(line.slice("ack ".length)));
      if (acked.size >= 200 && writer.kill("SIGKILL")) done();
    });
    writer.once("exit", (code) => {
      if (acked.size < 200) fail(new Error(`answer child exited ${String(code)}: ${stderr}`));
    });
  });
  await exited;
  child = undefined;

  const store = await openVoteStore(url, { dataDir });
  const votes = new Map<string, Vote[]>();
  for (const vote of await store.votesOf(generation.id)) {
    votes.set(vote.rater, [...(votes.get(vote.rater) ?? []), vote]);
  }
  const events: VoteEvent[] = [];
  for await (const event of store.events()) events.push(event);
  await store.close();
  for (const i of acked) {
    const scores = answerScores(i);
    const stored = Object.fromEntries(
      (votes.get(`web:r${i}`) ?? []).map((vote) => [vote.dimension, vote.score]),
    );
    expect(stored, `acknowledged answer ${i}`).toEqual(scores);
  }
  // Acknowledged or not, an answer is stored whole or not at all, its events with it.
  for (const [rater, stored] of votes) expect(stored, rater).toHaveLength(2);
  expect(events).toHaveLength(2 * votes.size);
  expect(new Set(events.map((event) => `${event.rater} ${event.dimension}`)).size).toBe(
    events.length,
  );
});
