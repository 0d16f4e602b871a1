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
 *   - the answer round trip (POST the answer, get the 303, load the next image's page) p50/p95
 *     next to its 100 ms bound, and the answer POST alone;
 *   - the page's own JavaScript and CSS in bytes, next to the 50 KB bound.
 *
 *   npx tsx bench/web.ts [--raters 50] [--concepts 10] [--prompts 3] [--store sqlite|memory]
 */

import { fork } from "node:child_process";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { SURVEY_CSS, SURVEY_JS } from "../src/adapters/web/assets.js";
import { seededRandom } from "../src/core/random.js";
import { csrfOf, webFixture } from "../test/web/fixture.js";

const ROUND_TRIP_GOAL_MS = 100;
const ASSET_GOAL_BYTES = 50 * 1024;
const WORKERS = 2;
const RATER_PROCESS = "--rater-process";

interface Job {
  base: string;
  items: number;
  raters: { index: number; link: string }[];
}

interface Measured {
  roundTrips: number[];
  posts: number[];
  retries: number;
  errors: string[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** One rater: their whole survey, as fast as the server answers. */
async function rate(job: Job, index: number, link: string, out: Measured): Promise<void> {
  const { base, items } = job;
  const random = seededRandom(1000 + index);
  const expect = (response: Response, status: number, what: string) => {
    if (response.status !== status) {
      throw new Error(`rater${index} ${what}: HTTP ${response.status} (expected ${status})`);
    }
  };
  const resume = await fetch(`${base}${link}`, { redirect: "manual" });
  expect(resume, 303, "resume");
  let page = await fetch(`${base}${resume.headers.get("location")}`);
  expect(page, 200, "first page");
  let html = await page.text();
  const csrf = csrfOf(html);
  for (let n = 1; n <= items; n++) {
    const image = await fetch(`${base}${link}/${n}/image`);
    expect(image, 200, "image");
    await image.arrayBuffer();
    const body = new URLSearchParams({
      csrf,
      quality: String(1 + Math.floor(random.next() * 4)),
      faithfulness: String(1 + Math.floor(random.next() * 4)),
    }).toString();
    const send = () =>
      fetch(`${base}${link}/${n}`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body,
      });
    const started = performance.now();
    const answered = await send();
    out.posts.push(performance.now() - started);
    expect(answered, 303, "answer");
    page = await fetch(`${base}${answered.headers.get("location")}`);
    expect(page, 200, "next page");
    html = await page.text();
    out.roundTrips.push(performance.now() - started);
    if (random.next() < 0.1) {
      out.retries++;
      expect(await send(), 303, "retried answer");
    }
  }
  if (!html.includes(`all ${items} images`)) throw new Error(`rater${index} did not finish`);
}

if (process.argv.includes(RATER_PROCESS)) {
  // A rater process: one job from the parent, its measurements back, then exit.
  process.once("message", async (job: Job) => {
    const out: Measured = { roundTrips: [], posts: [], retries: 0, errors: [] };
    await Promise.all(
      job.raters.map(({ index, link }) =>
        rate(job, index, link, out).catch((error: unknown) => {
          out.errors.push((error as Error).message);
        }),
      ),
    );
    process.send?.(out, () => process.exit(0));
  });
} else {
  const { values } = parseArgs({
    options: {
      raters: { type: "string", default: "50" },
      concepts: { type: "string", default: "10" },
      prompts: { type: "string", default: "3" },
      store: { type: "string", default: "sqlite" },
    },
  });
  const RATERS = Number(values.raters);
  const CONCEPTS = Number(values.concepts);
  const PROMPTS = Number(values.prompts);
  const fixture = await webFixture({
    concepts: Array.from({ length: CONCEPTS }, (_, i) => `subject number ${i + 1}`),
    prompts: PROMPTS,
    surveys: 2,
    storeUrl: values.store === "memory" ? "memory://" : "sqlite://votes.sqlite",
    // A survey's worth of answers fits the per-link burst; a real person is far slower.
    limits: { answers: { burst: 2 * CONCEPTS * PROMPTS, perSecond: 3 } },
  });
  try {
    const items = fixture.surveySize;
    const raters = Array.from({ length: RATERS }, (_, index) => ({
      index,
      link: fixture.raterPath(`rater${index}`, (index % 2) + 1),
    }));
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const results = await Promise.all(
      Array.from({ length: WORKERS }, (_, w) => {
        const job: Job = {
          base: fixture.server.url,
          items,
          raters: raters.filter((_, i) => i % WORKERS === w),
        };
        const child = fork(fileURLToPath(import.meta.url), [RATER_PROCESS], {
          execArgv: ["--import", "tsx"],
        });
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
    const serverCpuSeconds = (cpu.user + cpu.system) / 1e6;
    const roundTrips = results.flatMap((r) => r.roundTrips).sort((a, b) => a - b);
    const posts = results.flatMap((r) => r.posts).sort((a, b) => a - b);
    const retries = results.reduce((sum, r) => sum + r.retries, 0);
    const errors = results.flatMap((r) => r.errors);

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
    console.log(
      `  server process CPU: ${serverCpuSeconds.toFixed(1)} s over ${seconds.toFixed(1)} s (${Math.round((100 * serverCpuSeconds) / seconds)}% of one core); load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")} on ${availableParallelism()} cores`,
    );
    for (const error of errors.slice(0, 5)) console.log(`  error: ${error}`);
    console.log(
      `  votes stored: ${events} events for ${expected} answers × dimensions, ${duplicates} duplicate or unexpected   goal exactly once: ${exactlyOnce ? "met" : "NOT met"}`,
    );
    console.log(
      `  answer round trip (POST → 303 → next page): p50 ${percentile(roundTrips, 50).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${(roundTrips.at(-1) ?? 0).toFixed(1)} ms   goal p95 < ${ROUND_TRIP_GOAL_MS} ms: ${p95 < ROUND_TRIP_GOAL_MS ? "met" : "NOT met"}`,
    );
    console.log(
      `  answer POST alone: p50 ${percentile(posts, 50).toFixed(1)} ms, p95 ${percentile(posts, 95).toFixed(1)} ms`,
    );
    console.log(
      `  page JS + CSS: ${assetBytes} bytes (${assetGzip} gzipped)   goal < ${ASSET_GOAL_BYTES} bytes: ${assetBytes < ASSET_GOAL_BYTES ? "met" : "NOT met"}`,
    );
    if (!exactlyOnce) process.exitCode = 1;
  } finally {
    await fixture.close();
  }
}
