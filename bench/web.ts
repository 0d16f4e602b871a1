/**
 * The web survey under load: 50 raters at once, each answering their whole survey as fast as
 * the page allows (page, image, answer, next page — nothing in between), over real HTTP on
 * 127.0.0.1, against the SQLite vote store (the default backend). One answer in ten is sent
 * twice, as a double-clicked or retried form would be.
 *
 * Checks and prints:
 *   - every vote stored exactly once: events = raters × items × 2 and one per (rater, image,
 *     dimension), whatever the retries;
 *   - the answer round trip (POST the answer, get the 303, load the next image's page) p50/p95
 *     next to its 100 ms bound, and the answer POST alone;
 *   - the page's own JavaScript and CSS in bytes, next to the 50 KB bound.
 *
 *   npx tsx bench/web.ts [--raters 50] [--concepts 10] [--prompts 3] [--store sqlite|memory]
 */

import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { SURVEY_CSS, SURVEY_JS } from "../src/adapters/web/assets.js";
import { seededRandom } from "../src/core/random.js";
import { csrfOf, webFixture } from "../test/web/fixture.js";

const ROUND_TRIP_GOAL_MS = 100;
const ASSET_GOAL_BYTES = 50 * 1024;

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
const STORE = values.store === "memory" ? "memory://" : "sqlite://votes.sqlite";

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const fixture = await webFixture({
  concepts: Array.from({ length: CONCEPTS }, (_, i) => `subject number ${i + 1}`),
  prompts: PROMPTS,
  surveys: 2,
  storeUrl: STORE,
  // A survey's worth of answers fits the per-link burst; a real person is far slower.
  limits: { answers: { burst: 2 * CONCEPTS * PROMPTS, perSecond: 3 } },
});
const base = fixture.server.url;
const items = fixture.surveySize;
const roundTrips: number[] = [];
const posts: number[] = [];
let retries = 0;
let failures = 0;

async function expectStatus(response: Response, status: number, what: string): Promise<void> {
  if (response.status !== status) {
    failures++;
    throw new Error(`${what}: HTTP ${response.status} (expected ${status})`);
  }
}

async function rater(index: number): Promise<void> {
  const random = seededRandom(1000 + index);
  const link = fixture.raterPath(`rater${index}`, (index % 2) + 1);
  const resume = await fetch(`${base}${link}`, { redirect: "manual" });
  await expectStatus(resume, 303, "resume");
  let page = await fetch(`${base}${resume.headers.get("location")}`);
  await expectStatus(page, 200, "first page");
  let html = await page.text();
  const csrf = csrfOf(html);
  for (let n = 1; n <= items; n++) {
    const image = await fetch(`${base}${link}/${n}/image`);
    await expectStatus(image, 200, "image");
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
    posts.push(performance.now() - started);
    await expectStatus(answered, 303, "answer");
    page = await fetch(`${base}${answered.headers.get("location")}`);
    await expectStatus(page, 200, "next page");
    html = await page.text();
    roundTrips.push(performance.now() - started);
    if (random.next() < 0.1) {
      retries++;
      await expectStatus(await send(), 303, "retried answer");
    }
  }
  if (!html.includes(`all ${items} images`)) throw new Error(`rater${index} did not finish`);
}

const started = performance.now();
try {
  await Promise.all(Array.from({ length: RATERS }, (_, i) => rater(i)));
  const seconds = (performance.now() - started) / 1000;

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
  roundTrips.sort((a, b) => a - b);
  posts.sort((a, b) => a - b);
  const p95 = percentile(roundTrips, 95);
  const assetBytes = Buffer.byteLength(SURVEY_CSS.body) + Buffer.byteLength(SURVEY_JS.body);
  const assetGzip = gzipSync(SURVEY_CSS.body).length + gzipSync(SURVEY_JS.body).length;

  console.log(
    `web survey: ${RATERS} raters × ${items} images, ${values.store} store, ${retries} answers sent twice, ${seconds.toFixed(1)} s`,
  );
  console.log(
    `  votes stored: ${events} events for ${expected} answers×dimensions, ${duplicates} duplicate or unexpected   goal exactly once: ${events === expected && duplicates === 0 && failures === 0 ? "met" : "NOT met"}`,
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
  if (events !== expected || duplicates > 0) process.exitCode = 1;
} finally {
  await fixture.close();
}
