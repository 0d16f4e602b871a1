/**
 * The web survey under load: 50 raters at once, each answering their whole survey as fast as
 * the page allows (page, image, answer, next page — no pause in between), over real HTTP on
 * 127.0.0.1, against the SQLite vote store (the default backend). One answer in ten is sent
 * twice, as a double-clicked or retried form would be. The raters run in two child processes
 * (browsers are other processes), the server in this one.
 *
 * Checks and prints:
 *   - every vote stored exactly once: events = raters × images × 2 and one per (rater, image,
 *     dimension), whatever the retries;
 *   - the answer round trip as a rater sees it (POST the answer, follow the 303 to the next
 *     image's page, load the image that page shows) p50/p95 next to its 100 ms bound, and its
 *     parts: up to the next page's HTML, and the answer POST alone;
 *   - CPU per answer of the server process and, apart, of the load generator's processes, with
 *     the load average;
 *   - the page's own JavaScript and CSS in bytes, next to the 50 KB bound.
 *
 *   npx tsx bench/web.ts [--raters 50] [--concepts 10] [--prompts 3]
 *                        [--store sqlite|memory|redis|postgres]  (redis and postgres: the servers
 *                                                that IMAGINE_TEST_REDIS_URL / IMAGINE_TEST_POSTGRES_URL
 *                                                name, as `eval "$(scripts/services.sh)"` sets them;
 *                                                the run's keys or table are removed afterwards)
 *                        [--client http|fetch]  (the raters' HTTP client: node:http, or undici's fetch)
 *                        [--cpu-profile FILE]   (the server process over the measured run only;
 *                                                summed up by bench/lib/cpuProfile.ts)
 */

import { type ChildProcess, fork } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { Session } from "node:inspector/promises";
import { availableParallelism, loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import KeyvPostgres from "@keyv/postgres";
import { SURVEY_CSS, SURVEY_JS } from "../src/adapters/web/assets.js";
import { seededRandom } from "../src/core/random.js";
import { deleteRedisKeys } from "../test/helpers/redis.js";
import { csrfOf, webFixture } from "../test/web/fixture.js";

const ROUND_TRIP_GOAL_MS = 100;
const ASSET_GOAL_BYTES = 50 * 1024;
const WORKERS = 2;
/** How often the server's event loop is sampled for lateness. */
const LOOP_SAMPLE_MS = 10;
const RATER_PROCESS = "--rater-process";

interface Job {
  base: string;
  client: "http" | "fetch";
  items: number;
  raters: { index: number; link: string }[];
}

interface Measured {
  /** POST → 303 → next page → its image: until the rater sees the next image. */
  roundTrips: number[];
  /** POST → 303 → next page's HTML. */
  toPage: number[];
  posts: number[];
  retries: number;
  errors: string[];
  /** CPU microseconds of the rater process over its job (user + system). */
  cpuMicros: number;
}

/** V8's sampling profiler on this process, from now until stop() writes the .cpuprofile. */
async function startProfiler() {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  return {
    async stop(file: string) {
      const { profile } = await session.post("Profiler.stop");
      await writeFile(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** The image a survey page shows (its <img src>). */
function imageOf(html: string): string {
  const match = /<img src="([^"]+\/image)"/.exec(html);
  if (match === null) throw new Error("the survey page shows no image");
  return match[1] as string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** What the raters' HTTP client gives back: status, redirect target, body. */
interface Reply {
  status: number;
  location: string | null;
  body: Buffer;
}

type Client = (method: "GET" | "POST", path: string, form?: string) => Promise<Reply>;

/**
 * A rater's connection to the server, as a browser keeps one: node:http over a keep-alive agent
 * of its own (at most 6 sockets, as browsers allow per host). `fetch` (undici) works the same
 * but costs about twice the CPU per request, which here comes out of the server's two cores.
 */
function httpClient(base: string, kind: "http" | "fetch"): Client {
  const origin = new URL(base);
  const postHeaders = {
    "content-type": "application/x-www-form-urlencoded",
    origin: origin.origin,
    "sec-fetch-site": "same-origin",
  };
  if (kind === "fetch") {
    return async (method, path, form) => {
      const response = await fetch(`${base}${path}`, {
        method,
        redirect: "manual",
        ...(form === undefined ? {} : { headers: postHeaders, body: form }),
      });
      const body = Buffer.from(await response.arrayBuffer());
      return { status: response.status, location: response.headers.get("location"), body };
    };
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 6 });
  return (method, path, form) =>
    new Promise<Reply>((resolve, reject) => {
      const request = httpRequest(
        {
          host: origin.hostname,
          port: origin.port,
          method,
          path,
          agent,
          headers:
            form === undefined
              ? {}
              : { ...postHeaders, "content-length": String(Buffer.byteLength(form)) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              location: response.headers.location ?? null,
              body: Buffer.concat(chunks),
            }),
          );
          response.on("error", reject);
        },
      );
      request.on("error", reject);
      request.end(form);
    });
}

/** One rater: their whole survey, as fast as the server answers. */
async function rate(job: Job, index: number, link: string, out: Measured): Promise<void> {
  const { items } = job;
  const http = httpClient(job.base, job.client);
  const random = seededRandom(1000 + index);
  const expect = (reply: Reply, status: number, what: string) => {
    if (reply.status !== status) {
      throw new Error(`rater${index} ${what}: HTTP ${reply.status} (expected ${status})`);
    }
  };
  const resume = await http("GET", link);
  expect(resume, 303, "resume");
  let page = await http("GET", resume.location ?? "");
  expect(page, 200, "first page");
  let html = page.body.toString();
  const csrf = csrfOf(html);
  // The page shows its image: the browser loads it before the rater can answer.
  const loadImage = async () => {
    expect(await http("GET", imageOf(html)), 200, "image");
  };
  await loadImage();
  for (let n = 1; n <= items; n++) {
    const form = new URLSearchParams({
      csrf,
      quality: String(1 + Math.floor(random.next() * 4)),
      faithfulness: String(1 + Math.floor(random.next() * 4)),
    }).toString();
    const send = () => http("POST", `${link}/${n}`, form);
    const started = performance.now();
    const answered = await send();
    out.posts.push(performance.now() - started);
    expect(answered, 303, "answer");
    page = await http("GET", answered.location ?? "");
    expect(page, 200, "next page");
    html = page.body.toString();
    out.toPage.push(performance.now() - started);
    if (n < items) await loadImage();
    out.roundTrips.push(performance.now() - started);
    if (random.next() < 0.1) {
      out.retries++;
      expect(await send(), 303, "retried answer");
    }
  }
  if (!html.includes(`all ${items} images`)) throw new Error(`rater${index} did not finish`);
}

if (process.argv.includes(RATER_PROCESS)) {
  // A rater process: says it is ready, takes one job, sends its measurements back, exits.
  process.once("message", async (job: Job) => {
    const out: Measured = {
      roundTrips: [],
      toPage: [],
      posts: [],
      retries: 0,
      errors: [],
      cpuMicros: 0,
    };
    const cpuBefore = process.cpuUsage();
    await Promise.all(
      job.raters.map(({ index, link }) =>
        rate(job, index, link, out).catch((error: unknown) => {
          out.errors.push((error as Error).message);
        }),
      ),
    );
    const cpu = process.cpuUsage(cpuBefore);
    out.cpuMicros = cpu.user + cpu.system;
    process.send?.(out, () => process.exit(0));
  });
  process.send?.("ready");
} else {
  const { values } = parseArgs({
    options: {
      raters: { type: "string", default: "50" },
      concepts: { type: "string", default: "10" },
      prompts: { type: "string", default: "3" },
      store: { type: "string", default: "sqlite" },
      "cpu-profile": { type: "string" },
      client: { type: "string", default: "http" },
    },
  });
  for (const [name, allowed] of [
    ["store", ["sqlite", "memory", "redis", "postgres"]],
    ["client", ["http", "fetch"]],
  ] as const) {
    if (!(allowed as readonly string[]).includes(values[name])) {
      throw new Error(`--${name} must be one of ${allowed.join(", ")}, got ${values[name]}`);
    }
  }
  const RATERS = Number(values.raters);
  const CONCEPTS = Number(values.concepts);
  const PROMPTS = Number(values.prompts);
  const { storeUrl, cleanUp } = benchStore(values.store);
  const fixture = await webFixture({
    concepts: Array.from({ length: CONCEPTS }, (_, i) => `subject number ${i + 1}`),
    prompts: PROMPTS,
    surveys: 2,
    storeUrl,
    // A survey's worth of answers fits the per-link burst; a real person is far slower.
    limits: { answers: { burst: 2 * CONCEPTS * PROMPTS, perSecond: 3 } },
  });
  try {
    const items = fixture.surveySize;
    const raters = Array.from({ length: RATERS }, (_, index) => ({
      index,
      link: fixture.raterPath(`rater${index}`, (index % 2) + 1),
    }));
    // Start the rater processes first (tsx compiles them), then time only the answering.
    const children = await Promise.all(
      Array.from({ length: WORKERS }, () => {
        const child = fork(fileURLToPath(import.meta.url), [RATER_PROCESS], {
          execArgv: ["--import", "tsx"],
        });
        return new Promise<ChildProcess>((ready, fail) => {
          child.once("message", () => ready(child));
          child.once("error", fail);
        });
      }),
    );
    const loadBefore = loadavg();
    // How long callbacks wait for the server's event loop: queueing inside the server itself.
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
    loopDelay.enable();
    const profiler = values["cpu-profile"] ? await startProfiler() : undefined;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const results = await Promise.all(
      children.map((child, w) => {
        const job: Job = {
          base: fixture.server.url,
          client: values.client === "fetch" ? "fetch" : "http",
          items,
          raters: raters.filter((_, i) => i % WORKERS === w),
        };
        child.send(job);
        return new Promise<Measured>((done, fail) => {
          child.once("message", (measured) => done(measured as Measured));
          child.once("error", fail);
          child.once("exit", (code) => fail(new Error(`a rater process exited with ${code}`)));
        });
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const load = loadavg();
    loopDelay.disable();
    if (profiler && values["cpu-profile"]) await profiler.stop(values["cpu-profile"]);
    const serverCpuSeconds = (cpu.user + cpu.system) / 1e6;
    const raterCpuSeconds = results.reduce((sum, r) => sum + r.cpuMicros, 0) / 1e6;
    const sorted = (pick: (m: Measured) => number[]) => results.flatMap(pick).sort((a, b) => a - b);
    const roundTrips = sorted((r) => r.roundTrips);
    const toPage = sorted((r) => r.toPage);
    const posts = sorted((r) => r.posts);
    const retries = results.reduce((sum, r) => sum + r.retries, 0);
    const errors = results.flatMap((r) => r.errors);
    const answers = RATERS * items;

    const seen = new Set<string>();
    let events = 0;
    let duplicates = 0;
    for await (const event of fixture.votes.events()) {
      events++;
      const key = `${event.generationId} ${event.rater} ${event.dimension}`;
      if (seen.has(key) || event.kind !== "add" || event.source !== "web") duplicates++;
      seen.add(key);
    }
    const expected = RATERS * items * 2;
    const exactlyOnce = events === expected && duplicates === 0 && errors.length === 0;
    const p95 = percentile(roundTrips, 95);
    const assetBytes = Buffer.byteLength(SURVEY_CSS.body) + Buffer.byteLength(SURVEY_JS.body);
    const assetGzip = gzipSync(SURVEY_CSS.body).length + gzipSync(SURVEY_JS.body).length;

    console.log(
      `web survey: ${RATERS} raters × ${items} images, ${values.store} store, ${retries} answers sent twice, ${seconds.toFixed(1)} s`,
    );
    const perAnswer = (cpuSeconds: number) => `${((1000 * cpuSeconds) / answers).toFixed(2)} ms`;
    console.log(
      `  load average (1, 5, 15 min) ${loadBefore.map((l) => l.toFixed(1)).join(" ")} before the run, ${load.map((l) => l.toFixed(1)).join(" ")} after, on ${availableParallelism()} cores`,
    );
    console.log(
      `  CPU per answer (answer, next page, its image): server ${perAnswer(serverCpuSeconds)} (${serverCpuSeconds.toFixed(1)} s, ${Math.round((100 * serverCpuSeconds) / seconds)}% of one core), load generator ${perAnswer(raterCpuSeconds)} (${raterCpuSeconds.toFixed(1)} s in ${WORKERS} other processes)`,
    );
    for (const error of errors.slice(0, 5)) console.log(`  error: ${error}`);
    console.log(
      `  votes stored: ${events} events for ${expected} answers × dimensions, ${duplicates} duplicate or unexpected   goal exactly once: ${exactlyOnce ? "met" : "NOT met"}`,
    );
    // The histogram holds whole timer intervals: what exceeds the interval is the lateness.
    const late = (ns: number) => `${Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS).toFixed(1)} ms`;
    console.log(
      `  server event loop late by: p50 ${late(loopDelay.percentile(50))}, p99 ${late(loopDelay.percentile(99))}, max ${late(loopDelay.max)}`,
    );
    const spread = (values: number[]) =>
      `p50 ${percentile(values, 50).toFixed(1)} ms, p95 ${percentile(values, 95).toFixed(1)} ms`;
    console.log(
      `  answer round trip (POST → 303 → next page → its image): ${spread(roundTrips)}, max ${(roundTrips.at(-1) ?? 0).toFixed(1)} ms   goal p95 < ${ROUND_TRIP_GOAL_MS} ms: ${p95 < ROUND_TRIP_GOAL_MS ? "met" : "NOT met"}`,
    );
    console.log(
      `    up to the next page's HTML: ${spread(toPage)}; the answer POST alone: ${spread(posts)}`,
    );
    console.log(
      `  page JS + CSS: ${assetBytes} bytes (${assetGzip} gzipped)   goal < ${ASSET_GOAL_BYTES} bytes: ${assetBytes < ASSET_GOAL_BYTES ? "met" : "NOT met"}`,
    );
    if (!exactlyOnce) process.exitCode = 1;
  } finally {
    await fixture.close();
    await cleanUp();
  }
}

/** The vote store URL for --store, and how to remove what the run wrote there. */
function benchStore(store: string): { storeUrl: string; cleanUp: () => Promise<void> } {
  const run = `bench-web-${process.pid}-${Date.now()}`;
  const server = (variable: string, what: string) => {
    const url = process.env[variable];
    if (!url) {
      throw new Error(
        `--store ${store} needs ${variable} (the ${what} to use): run \`eval "$(scripts/services.sh)"\` first`,
      );
    }
    return url;
  };
  const withParams = (url: string, params: string) =>
    `${url}${url.includes("?") ? "&" : "?"}${params}`;
  switch (store) {
    case "redis": {
      const url = server("IMAGINE_TEST_REDIS_URL", "Redis server");
      return {
        storeUrl: withParams(url, `namespace=${run}`),
        cleanUp: () => deleteRedisKeys(url, run),
      };
    }
    case "postgres": {
      const url = server("IMAGINE_TEST_POSTGRES_URL", "PostgreSQL database");
      const table = run.replaceAll("-", "_");
      return {
        storeUrl: withParams(url, `table=${table}`),
        cleanUp: async () => {
          const admin = new KeyvPostgres({ uri: url, table });
          await admin.query(`DROP TABLE IF EXISTS public."${table}"`);
          await admin.disconnect();
        },
      };
    }
    case "memory":
      return { storeUrl: "memory://", cleanUp: async () => {} };
    default:
      return { storeUrl: "sqlite://votes.sqlite", cleanUp: async () => {} };
  }
}
