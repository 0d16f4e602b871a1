/**
 * Discord latency, measured at the fake Discord: the real adapter (the real discord.js client,
 * logged in over the gateway) on the real pipeline (the tiny prompt model, the memory vote store)
 * against test/fakes/discord.ts on 127.0.0.1.
 *
 * 1. Defer latency: from the fake gateway dispatching INTERACTION_CREATE for `/imagine` to the
 *    interaction callback that defers it (type 5) arriving at the fake REST API (Discord drops
 *    interactions not answered within 3 s), while the bot is busy. The image backend holds every
 *    render until the end, so first `--background` jobs (default 20) are queued, then
 *    `--requests` (default 200) measured `/imagine` interactions are dispatched, `--concurrency`
 *    (default 8) at a time, each from its own user; each of them queues a job too, so the queue
 *    only grows while measuring and progress edits keep flowing to the fake. Goal: p99 < 300 ms.
 * 2. End to end: from INTERACTION_CREATE to the PATCH of the original response that carries the
 *    PNG, for `--single` (default 30) `/imagine` requests one at a time, with renders that take
 *    0 ms; what remains is the tiny model writing the prompt, the pipeline and the Discord round
 *    trips (defer, progress edits, the multipart upload). Reported, no goal.
 *
 * Arrival is when the fake has read and answered the request (its "call" event).
 *
 *   npx tsx bench/discord.ts [--requests 200] [--background 20] [--concurrency 8] [--single 30]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { RESTEvents } from "discord.js";
import { CHAT_COMMANDS } from "../src/adapters/chat/commands.js";
import { type CommandReport, startDiscordAdapter } from "../src/adapters/discord/index.js";
import { saveImage } from "../src/core/image/store.js";
import { createLogger } from "../src/core/logger.js";
import { createPipeline } from "../src/core/pipeline.js";
import { PromptArms } from "../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../src/core/safety/index.js";
import { openVoteStore } from "../src/core/votes/store.js";
import { FakeDiscord, type RecordedCall } from "../test/fakes/discord.js";
import { testConfig } from "../test/helpers/config.js";
import { nextEvent } from "../test/pipeline/fakes.js";
import { PngBackend } from "../test/slack/harness.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "200" },
    background: { type: "string", default: "20" },
    concurrency: { type: "string", default: "8" },
    single: { type: "string", default: "30" },
  },
});
const requests = Number(values.requests);
const background = Number(values.background);
const concurrency = Number(values.concurrency);
const single = Number(values.single);
const GOAL_P99_MS = 300;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] as number;
}

const dataDir = mkdtempSync(join(tmpdir(), "imagine-bench-discord-"));
const config = testConfig({
  dataDir,
  image: { width: 64, height: 64, steps: 20, timeoutMs: 600_000, retries: 0 },
  // Every measured interaction comes from its own user; the global cap must hold them all.
  queue: { concurrency: 2, perUserCap: 3, globalCap: 10_000, deadlineMs: 600_000 },
});
let warnings = 0;
const logger = createLogger({
  level: "warn",
  destination: new Writable({
    write(_chunk, _encoding, done) {
      warnings++;
      done();
    },
  }),
});
const arms = new PromptArms(config, {}, logger);
const votes = await openVoteStore("memory://", { dataDir, logger });
const backend = new PngBackend();
const pipeline = createPipeline({
  config,
  arms,
  backend,
  filter: loadExplicitFilter({}),
  store: votes,
  saveImage,
  logger,
});
const fake = new FakeDiscord();
await fake.start();
fake.setMaxListeners(0);

// Requests waited for, by interaction token: one listener on the fake for all of them.
const waiting = new Map<string, { match: (call: RecordedCall) => boolean; resolve: () => void }>();
fake.on("call", (call: RecordedCall) => {
  const token = /\/(itoken-\d+)/.exec(call.path)?.[1];
  const waiter = token ? waiting.get(token) : undefined;
  if (waiter?.match(call)) {
    waiting.delete(token as string);
    waiter.resolve();
  }
});

const adapter = await startDiscordAdapter(
  { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl },
  { config, logger, arms, pipeline, votes, commands: CHAT_COMMANDS },
);

// discord.js holds every REST request but interaction callbacks to 50 a second (Discord's global
// limit); count how often it made requests wait.
let globalWaits = 0;
adapter.client.rest.on(RESTEvents.RateLimited, (info) => {
  if (info.global) globalWaits++;
});

/** Dispatches `/imagine subject` from `userId`; `arrived` settles on the first matching call. */
function imagine(
  subject: string,
  userId: string,
  match: (call: RecordedCall) => boolean,
): { id: string; token: string; started: number; arrived: Promise<number> } {
  const user = fake.users.get(userId) ?? fake.user(userId);
  let resolve!: () => void;
  const arrivedAt = new Promise<void>((r) => {
    resolve = r;
  });
  // The token is known only after dispatch, but the dispatch is synchronous and nothing can
  // answer before this function returns, so registering right after it misses nothing.
  const started = performance.now();
  const { id, token } = fake.interact({
    name: "imagine",
    options: [{ name: "subject", type: 3, value: subject }],
    user,
  });
  waiting.set(token, { match, resolve });
  return { id, token, started, arrived: arrivedAt.then(() => performance.now() - started) };
}

const isCallback = (call: RecordedCall) =>
  call.method === "POST" && call.path.endsWith("/callback");
const isImagePatch = (call: RecordedCall) => call.method === "PATCH" && call.files.length > 0;

let userSeq = 0;
const nextUser = () => (1_100_000_000_000_100_000n + BigInt(userSeq++)).toString();

let release!: () => void;
const released = new Promise<void>((resolve) => {
  release = resolve;
});

try {
  // ---- 2. End to end, one at a time, 0 ms renders (first, while the queue is empty). ----
  const endToEnd: number[] = [];
  let notDone = 0;
  for (let i = -3; i < single; i++) {
    const done = new Promise<CommandReport>((resolve) => {
      const request = imagine(`a lighthouse at dusk ${i}`, nextUser(), isImagePatch);
      void nextEvent<CommandReport>(adapter.events, "command", (r) => r.id === request.id).then(
        resolve,
      );
      // The first three are warm-up (JIT, connection pool, model session), not measured.
      if (i >= 0) void request.arrived.then((ms) => endToEnd.push(ms));
    });
    // Wait for the whole command (reactions included) so that requests do not overlap.
    const report = await done;
    if (report.outcome !== "done") notDone++;
  }
  endToEnd.sort((a, b) => a - b);
  const singleGlobalWaits = globalWaits;

  // ---- 1. Defer latency under load. ----
  backend.gate = () => released;
  for (let i = 0; i < background; i++) {
    const request = imagine(`a harbour number ${i}`, nextUser(), isCallback);
    await request.arrived;
  }
  await new Promise<void>((resolve) => {
    const check = () =>
      pipeline.queue.snapshot().total >= background ? resolve() : setTimeout(check, 5);
    check();
  });
  const queuedBefore = pipeline.queue.snapshot();

  const latencies: number[] = [];
  let next = 0;
  let notDeferred = 0;
  const worker = async () => {
    while (next < requests) {
      const n = next++;
      let deferred = false;
      const request = imagine(`a harbour at dawn ${n}`, nextUser(), (call) => {
        if (!isCallback(call)) return false;
        deferred = (call.json as { type?: number } | undefined)?.type === 5;
        return true;
      });
      latencies.push(await request.arrived);
      if (!deferred) notDeferred++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallMs = performance.now() - started;
  const queuedAfter = pipeline.queue.snapshot();

  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  const max = latencies.at(-1) ?? Number.NaN;
  console.log(
    `discord defer latency: ${requests} /imagine interactions over the gateway, ${concurrency} at a time, ` +
      `${queuedBefore.total} jobs queued before (${queuedAfter.total} after), renders held`,
  );
  console.log(
    `  p50 ${p50.toFixed(1)} ms   p99 ${p99.toFixed(1)} ms   max ${max.toFixed(1)} ms   (goal: p99 < ${GOAL_P99_MS} ms) ${p99 < GOAL_P99_MS ? "OK" : "MISSED"}`,
  );
  console.log(
    `  callbacks other than a defer (type 5): ${notDeferred}; ${(requests / (wallMs / 1000)).toFixed(0)} interactions/s`,
  );
  console.log(
    `discord end to end: ${single} /imagine one at a time, 0 ms renders, tiny prompt model; ` +
      "INTERACTION_CREATE → PATCH with the PNG",
  );
  console.log(
    `  p50 ${percentile(endToEnd, 50).toFixed(1)} ms   p95 ${percentile(endToEnd, 95).toFixed(1)} ms   max ${(endToEnd.at(-1) ?? Number.NaN).toFixed(1)} ms   (no goal; reported)`,
  );
  console.log(
    `  commands not done: ${notDone}; discord.js global rate-limit waits (50 requests/s): ${singleGlobalWaits}; warnings/errors logged: ${warnings}`,
  );
} finally {
  const closing = performance.now();
  release();
  // Fails what is still queued ("shutting down"); the adapter tells each asker, then stops.
  adapter.stopAccepting();
  await pipeline.close();
  await adapter.drain();
  await adapter.close();
  // Mostly the backlog of progress edits and "shutting down" replies, sent at 50 requests/s.
  console.log(
    `  shutdown: ${((performance.now() - closing) / 1000).toFixed(1)} s to drain and close`,
  );
  await arms.close();
  await votes.close();
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
}
