/**
 * Scale-out drill with real processes on a real Redis: two chat processes (`imagine-bot serve`,
 * each the gateway of its own fake Discord, as two shards would be), three `imagine-bot worker`
 * processes (concurrency 2) and two fake AUTOMATIC1111 servers, one of which answers every
 * render with a 500 (the third worker's). The good server holds its renders until the test lets
 * them go, so that the kills land mid-job:
 *
 *   12 /imagine (6 per chat process) → the good server holds 4 renders (both good workers full)
 *   → kill -9 worker 1 (2 jobs mid-render) and chat process 1 (its jobs unanswered)
 *   → renders released; chat process 1 restarts under the same IMAGINE_CHAT_ID
 *   → every subject is posted exactly once: worker 1's jobs retried by another worker after
 *     their lock lapsed, chat process 1's results posted in the channel by its successor, the
 *     failing server's jobs handed back to a good worker; 12 generation records.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { openVoteStore } from "../../src/core/votes/index.js";
import { FakeAutomatic1111 } from "../fakes/automatic1111.js";
import { FakeDiscord, type RecordedCall } from "../fakes/discord.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import type { RecordedHttpRequest } from "../image/images.js";
import { requireService, runId } from "../votes/services.js";

const JOBS_PER_CHAT = 6;

/** A fake A1111 that can hold its renders (released together) and tells when renders arrive. */
class HeldAutomatic1111 extends FakeAutomatic1111 {
  private readonly held: (() => void)[] = [];
  private received = 0;
  private readonly listeners: (() => boolean)[] = [];

  constructor(private holding: boolean) {
    super();
  }

  /** Resolves once `count` renders are held. */
  whenHolding(count: number): Promise<void> {
    return this.when(() => this.held.length >= count);
  }

  /** Resolves once `count` renders have arrived. */
  whenReceived(count: number): Promise<void> {
    return this.when(() => this.received >= count);
  }

  release(): void {
    this.holding = false;
    for (const go of this.held.splice(0)) go();
  }

  private when(condition: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return false;
        resolve();
        return true;
      };
      if (!check()) this.listeners.push(check);
    });
  }

  private changed(): void {
    for (const listener of this.listeners.splice(0)) {
      if (!listener()) this.listeners.push(listener);
    }
  }

  protected override async handle(request: RecordedHttpRequest, res: ServerResponse) {
    if (request.path === "/sdapi/v1/txt2img") {
      this.received++;
      if (this.holding) {
        const released = new Promise<void>((resolve) => this.held.push(resolve));
        this.changed();
        await released;
      } else {
        this.changed();
      }
    }
    return super.handle(request, res);
  }
}

interface Child {
  name: string;
  process: ChildProcess;
  /** Resolves at the first log line with this message. */
  logged(message: string): Promise<void>;
  exited: Promise<unknown>;
}

const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
});

function start(name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const child = spawn(process.execPath, ["--import", "tsx", "src/adapters/cli/main.ts", ...args], {
    env: { PATH: process.env.PATH, TMPDIR: process.env.TMPDIR, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  const seen = new Set<string>();
  const waiting = new Map<string, (() => void)[]>();
  const lines: string[] = [];
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
    lines.push(line);
    let message: string | undefined;
    try {
      message = (JSON.parse(line) as { msg?: string }).msg;
    } catch {
      return;
    }
    if (message === undefined) return;
    seen.add(message);
    for (const resolve of waiting.get(message) ?? []) resolve();
    waiting.delete(message);
  });
  const exited = once(child, "exit").then(([code]) => {
    children.delete(child);
    return code;
  });
  return {
    name,
    process: child,
    exited,
    logged: (message) =>
      seen.has(message)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => {
              waiting.set(message, [...(waiting.get(message) ?? []), resolve]);
            }),
            exited.then(() => {
              throw new Error(`${name} exited before logging "${message}":\n${lines.join("\n")}`);
            }),
          ]),
  };
}

/** The subject of an image post (an interaction reply or a channel message), if the call is one. */
function postedSubject(call: RecordedCall): string | undefined {
  if (call.files.length === 0 || call.status >= 300) return undefined;
  const content = (call.json as { content?: string } | undefined)?.content ?? "";
  return /^\*\*(lighthouse \d+)\*\*/.exec(content)?.[1];
}

const redisUrl = requireService("IMAGINE_TEST_REDIS_URL", "Redis");

describe.runIf(redisUrl !== undefined)("scale-out drill (BullMQ, real processes)", () => {
  it("loses and doubles nothing when a worker and a chat process are killed mid-job", async () => {
    const url = redisUrl as string;
    const prefix = `imagine-scale-${runId()}`;
    const dir = mkdtempSync(join(tmpdir(), "imagine-scale-"));
    const discords = [new FakeDiscord(), new FakeDiscord()];
    const good = new HeldAutomatic1111(true);
    const failing = new HeldAutomatic1111(false).otherwise({ kind: "error", status: 500 });
    const events = new QueueEvents("render", {
      connection: new Redis(url, { maxRetriesPerRequest: null }),
      prefix,
    });
    try {
      await Promise.all([...discords.map((d) => d.start()), good.start(), failing.start()]);
      good.otherwise({ kind: "image" });
      const configFile = join(dir, "config.json");
      writeFileSync(
        configFile,
        JSON.stringify({
          queue: { prefix, concurrency: 2, perUserCap: 3, globalCap: 100, deadlineMs: 120_000 },
          image: { backend: "automatic1111", width: 64, height: 64, steps: 1, retries: 0 },
        }),
      );
      const shared = {
        IMAGINE_CONFIG: configFile,
        IMAGINE_QUEUE_URL: url,
        IMAGINE_VOTE_STORE: `${url}?namespace=${prefix}-votes`,
        IMAGINE_LOG_LEVEL: "info",
      };
      const worker = (n: number, backendUrl: string) =>
        start(`worker ${n}`, ["worker", "--concurrency", "2", "--lock-ms", "1000"], {
          ...shared,
          IMAGINE_DATA_DIR: join(dir, `worker-${n}`),
          A1111_URL: backendUrl,
        });
      const chat = (n: number) => {
        const discord = discords[n - 1] as FakeDiscord;
        return start(`chat ${n}`, ["serve"], {
          ...shared,
          IMAGINE_DATA_DIR: join(dir, `chat-${n}`),
          IMAGINE_CHAT_ID: `chat-${n}`,
          DISCORD_TOKEN: discord.token,
          DISCORD_API_URL: discord.apiUrl,
        });
      };
      const workers = [worker(1, good.url), worker(2, good.url), worker(3, failing.url)];
      let chats = [chat(1), chat(2)];
      await Promise.all([
        ...workers.map((w) => w.logged("worker taking jobs")),
        ...chats.map((c) => c.logged("adapter started")),
        ...discords.map((d) => d.waitForIdentify(1)),
      ]);

      // Every job in the queue before anything is killed: a kill before the submit would lose
      // the interaction itself, which is Discord's to time out.
      const submitted = new Set<string>();
      const allSubmitted = new Promise<void>((resolve) => {
        events.on("waiting", ({ jobId }) => {
          submitted.add(jobId);
          if (submitted.size === 2 * JOBS_PER_CHAT) resolve();
        });
      });
      await events.waitUntilReady();
      let n = 0;
      /** Each subject's interaction token: its image must replace that interaction's reply. */
      const tokenOf = new Map<string, string>();
      for (const discord of discords) {
        for (let i = 0; i < JOBS_PER_CHAT; i++) {
          n++;
          const { token } = discord.interact({
            name: "imagine",
            options: [{ name: "subject", type: 3, value: `lighthouse ${n}` }],
            user: discord.user(`11000000000000000${String(n).padStart(2, "0")}`),
          });
          tokenOf.set(`lighthouse ${n}`, token);
        }
      }
      await allSubmitted;
      // Both good workers full (4 renders held), and the failing server's worker has failed a
      // job and handed it back.
      await Promise.all([good.whenHolding(4), failing.whenReceived(1)]);

      // Worker 1 holds two of the four renders; chat process 1 is waiting for its six jobs.
      workers[0]?.process.kill("SIGKILL");
      chats[0]?.process.kill("SIGKILL");
      await Promise.all([workers[0]?.exited, chats[0]?.exited]);
      good.release();
      const restarted = chat(1);
      chats = [restarted, chats[1] as Child];
      await restarted.logged("adapter started");

      const expected = Array.from({ length: 2 * JOBS_PER_CHAT }, (_, i) => `lighthouse ${i + 1}`);
      const posted = () =>
        discords.flatMap((d) => d.calls.map(postedSubject).filter((s) => s !== undefined));
      await new Promise<void>((resolve) => {
        const check = () => {
          if (!expected.every((subject) => posted().includes(subject))) return;
          for (const discord of discords) discord.off("call", check);
          resolve();
        };
        for (const discord of discords) discord.on("call", check);
        check();
      });
      // Clean shutdowns drain every reply in flight: a double post would be made by now.
      for (const child of [...chats, workers[1], workers[2]]) child?.process.kill("SIGTERM");
      await Promise.all([...chats, workers[1], workers[2]].map((child) => child?.exited));

      expect(posted().sort()).toEqual([...expected].sort());
      // Every image replaced its interaction's reply: chat process 1's successor edited the
      // replies of the interactions the killed process had deferred (within Discord's window).
      for (const [i, discord] of discords.entries()) {
        const edits = discord.calls
          .filter((call) => postedSubject(call) !== undefined)
          .map(
            (call) =>
              `${call.method} ${decodeURIComponent(call.path).replace(tokenOf.get(postedSubject(call) as string) as string, "TOKEN")}`,
          );
        expect(edits, `chat ${i + 1}`).toEqual(
          Array(JOBS_PER_CHAT).fill(
            `PATCH /webhooks/${discord.applicationId}/TOKEN/messages/@original`,
          ),
        );
      }
      // Worker 1's two jobs were rendered again by a good worker, the failing server's jobs
      // handed back: the good server rendered every job at least once, the failing one none.
      expect(good.renders.length).toBeGreaterThanOrEqual(expected.length);
      const store = await openVoteStore(shared.IMAGINE_VOTE_STORE, { dataDir: dir });
      try {
        const generations = [];
        for await (const posted of store.postedMessages({
          platform: "discord",
          since: new Date(0),
        })) {
          generations.push(posted.generation.subject);
        }
        expect(generations.sort()).toEqual([...expected].sort());
      } finally {
        await store.close();
      }
    } finally {
      await events.close();
      await Promise.allSettled([...discords.map((d) => d.close()), good.stop(), failing.stop()]);
      await deleteRedisKeys(url, prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
