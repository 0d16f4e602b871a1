import { createHash } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SURVEY_CSS, SURVEY_JS } from "../../src/adapters/web/assets.js";
import { CONTENT_SECURITY_POLICY } from "../../src/adapters/web/security.js";
import type { CommandContext } from "../../src/commands/command.js";
import { studyCommand } from "../../src/commands/study.js";
import { pngChunkTypes } from "../../src/core/image/png.js";
import type { VoteEvent } from "../../src/core/types.js";
import { ARMS, csrfOf, type WebFixture, webFixture } from "./fixture.js";

let fixture: WebFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

async function setup(options: Parameters<typeof webFixture>[0] = {}) {
  fixture = await webFixture(options);
  return fixture;
}

function get(f: WebFixture, path: string, init: RequestInit = {}) {
  return fetch(`${f.server.url}${path}`, { redirect: "manual", ...init });
}

function answer(
  f: WebFixture,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return fetch(`${f.server.url}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

async function events(f: WebFixture): Promise<VoteEvent[]> {
  const all: VoteEvent[] = [];
  for await (const event of f.votes.events()) all.push(event);
  return all;
}

/** The text of every inline <style> and <script> of a page. */
function inlineCode(html: string): string[] {
  return [...html.matchAll(/<(style|script)[^>]*>([\s\S]*?)<\/\1>/g)].map((m) => m[2] as string);
}

function sha256Source(code: string): string {
  return `'sha256-${createHash("sha256").update(code).digest("base64")}'`;
}

async function formToken(f: WebFixture, link: string, n = 1): Promise<string> {
  const response = await get(f, `${link}/${n}`);
  expect(response.status).toBe(200);
  return csrfOf(await response.text());
}

describe("web survey over HTTP", () => {
  it("shows one image at a time with its subject, never an arm, prompt or model", async () => {
    const f = await setup();
    const link = f.raterPath("alice");
    const resume = await get(f, link);
    expect(resume.status).toBe(303);
    expect(resume.headers.get("location")).toBe(`${link}/1`);
    const response = await get(f, `${link}/1`);
    const html = await response.text();
    expect(response.status).toBe(200);
    expect(html).toContain(`Image <strong>1</strong> / ${f.surveySize}`);
    expect(html).toMatch(
      /Subject: <strong>(a lighthouse|a red bicycle|an old oak tree|a harbour at dawn|a teapot)<\/strong>/,
    );
    for (const secret of [...ARMS, "secret prompt", "sd-test", "gen-0"]) {
      expect(html).not.toContain(secret);
    }
    expect(html).toContain(`<legend>Image quality`);
    expect(html).toContain(`<legend>Faithfulness`);
    expect(html).toContain(`<script type="module">${SURVEY_JS.body}</script>`);
    expect(html).toContain('width="32" height="32"');
    expect(response.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("referrer-policy")).toBe("same-origin");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("cache-control")).toBe("no-store");
    // No inline code but the page's own, which the CSP allows by hash; no style attributes.
    expect(inlineCode(html).map(sha256Source).sort()).toEqual(
      [SURVEY_CSS.cspSource, SURVEY_JS.cspSource].sort(),
    );
    expect(html).not.toMatch(/ style=| on[a-z]+=/);
  });

  it("serves images by position, stripped of every metadata chunk; nothing by file name", async () => {
    const f = await setup();
    const link = f.raterPath("alice");
    const image = await get(f, `${link}/1/image`);
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/png");
    const types = pngChunkTypes(Buffer.from(await image.arrayBuffer()));
    expect(types).toEqual(expect.arrayContaining(["IHDR", "IDAT", "IEND"]));
    expect(types.filter((t) => !["IHDR", "PLTE", "tRNS", "IDAT", "IEND"].includes(t))).toEqual([]);
    // Revalidation: the same tag gets a 304 with no body; another image's tag does not match.
    const etag = image.headers.get("etag") ?? "";
    expect(etag).toMatch(/^"[\w-]{22}"$/);
    expect(image.headers.get("cache-control")).toBe("private, max-age=3600");
    const again = await get(f, `${link}/1/image`, { headers: { "If-None-Match": etag } });
    expect(again.status).toBe(304);
    expect((await again.arrayBuffer()).byteLength).toBe(0);
    expect(again.headers.get("etag")).toBe(etag);
    const other = await get(f, `${link}/2/image`);
    expect(other.headers.get("etag")).not.toBe(etag);
    const stale = await get(f, `${link}/2/image`, { headers: { "If-None-Match": etag } });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
    for (const path of [
      `${link}/0/image`,
      `${link}/${f.surveySize + 1}/image`,
      `${link}/..%2F..%2Fstudies/image`,
      `${link}/gen-0000/image`,
      "/images/2026-01-01/gen-0000.png",
      "/s/../images/2026-01-01/gen-0000.png",
    ]) {
      const response = await get(f, path);
      expect([403, 404]).toContain(response.status);
      expect(response.headers.get("content-type")).not.toBe("image/png");
    }
  });

  it("stores an answer once as two web votes, however often it is sent, and moves on", async () => {
    const f = await setup();
    const link = f.raterPath("alice");
    const csrf = await formToken(f, link);
    const fields = { csrf, quality: "3", faithfulness: "2" };
    const first = await answer(f, `${link}/1`, fields);
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe(`${link}/2`);
    // Retries: three at once and one after.
    const retries = await Promise.all([1, 2, 3].map(() => answer(f, `${link}/1`, fields)));
    expect(retries.map((r) => r.status)).toEqual([303, 303, 303]);
    await answer(f, `${link}/1`, fields);
    const stored = await events(f);
    expect(
      stored.map(({ kind, rater, dimension, score, source }) => ({
        kind,
        rater,
        dimension,
        score,
        source,
      })),
    ).toEqual([
      { kind: "add", rater: "web:alice", dimension: "quality", score: 3, source: "web" },
      { kind: "add", rater: "web:alice", dimension: "faithfulness", score: 2, source: "web" },
    ]);
    // Resume goes to the first unanswered image, and the answered one shows its answers.
    expect((await get(f, link)).headers.get("location")).toBe(`${link}/2`);
    const again = await (await get(f, `${link}/1`)).text();
    expect(again).toMatch(/name="quality" value="3" required checked/);
    expect(again).toMatch(/name="faithfulness" value="2" required checked/);
    expect(again).toContain(`1 of ${f.surveySize} answered`);
  });

  it("changing an earlier answer replaces only the changed dimension", async () => {
    const f = await setup();
    const link = f.raterPath("bob");
    const csrf = await formToken(f, link);
    await answer(f, `${link}/1`, { csrf, quality: "1", faithfulness: "4" });
    await answer(f, `${link}/1`, { csrf, quality: "2", faithfulness: "4" });
    const stored = await events(f);
    expect(stored.map((e) => [e.kind, e.dimension, e.score, e.previous])).toEqual([
      ["add", "quality", 1, undefined],
      ["add", "faithfulness", 4, undefined],
      ["replace", "quality", 2, 1],
    ]);
    const generationId = stored[0]?.generationId as string;
    expect((await f.votes.votesOf(generationId)).map((v) => [v.dimension, v.score]).sort()).toEqual(
      [
        ["faithfulness", 4],
        ["quality", 2],
      ],
    );
  });

  it("refuses tampered, expired, revoked and wrong-role links with 403 and records nothing", async () => {
    let clock = new Date("2026-02-01T00:00:00Z");
    const f = await setup({ now: () => clock });
    const good = f.raterPath("carol");
    const csrf = await formToken(f, good);
    const [prefix, body, mac] = good.slice(3).split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(body, "base64url").toString());
    const otherSurvey = Buffer.from(JSON.stringify({ ...payload, n: 2 })).toString("base64url");
    const tampered = [
      `/s/${prefix}.${otherSurvey}.${mac}`,
      `/s/${prefix}.${body}.${mac.slice(0, -2)}AA`,
      "/s/not-a-link",
      `/s/${f.adminPath().slice(7)}`,
    ];
    const expiring = f.raterPath("carol", 1, 60_000);
    const revoked = f.raterPath("dave");
    await f.revocations.revoke({ studyId: f.studyId, rater: "dave" }, clock);
    clock = new Date(clock.getTime() + 60_000);
    for (const link of [...tampered, expiring, revoked]) {
      for (const path of [link, `${link}/1`, `${link}/1/image`, `${link}/done`]) {
        const response = await get(f, path);
        expect(response.status, path).toBe(403);
        expect(await response.text()).not.toContain("csrf");
      }
      const post = await answer(f, `${link}/1`, { csrf, quality: "4", faithfulness: "4" });
      expect(post.status, link).toBe(403);
    }
    expect(await f.eventCount()).toBe(0);
    // The good link still works after all that.
    expect((await answer(f, `${good}/1`, { csrf, quality: "4", faithfulness: "4" })).status).toBe(
      303,
    );
    expect(await f.eventCount()).toBe(2);
  });

  it("finds a study's images through the study's own index, never by reading every generation", async () => {
    const f = await setup();
    // Decoys in the same store: each posted item again, older, under another study and as a
    // chat generation, pointing at files that do not exist.
    for (let i = 0; i < f.surveySize * 2; i++) {
      const real = await f.votes.getGeneration(`gen-${String(i).padStart(4, "0")}`);
      if (real === undefined) throw new Error(`the fixture has no gen-${i}`);
      const older = new Date(Date.parse(real.createdAt) - 3_600_000).toISOString();
      const missing = { ...real.image, path: "images/none.png" };
      await f.votes.saveGeneration({
        ...real,
        id: `other-${i}`,
        studyId: "other-study",
        createdAt: older,
        image: missing,
      });
      const { studyId: _, ...chat } = real;
      await f.votes.saveGeneration({ ...chat, id: `chat-${i}`, createdAt: older, image: missing });
    }
    const scan = vi.spyOn(f.votes, "generations");
    const link = f.raterPath("lee");
    for (let n = 1; n <= f.surveySize; n++) {
      expect((await get(f, `${link}/${n}/image`)).status, `image ${n}`).toBe(200);
    }
    expect(scan).not.toHaveBeenCalled();
  });

  it("refuses a link that worked before once it expires or is revoked", async () => {
    let clock = new Date("2026-02-01T00:00:00Z");
    const f = await setup({ now: () => clock });
    const expiring = f.raterPath("ivy", 1, 60_000);
    const revoked = f.raterPath("jack");
    const csrf = await formToken(f, expiring);
    expect((await get(f, `${revoked}/1`)).status).toBe(200);
    await f.revocations.revoke({ studyId: f.studyId, rater: "jack" }, clock);
    expect((await get(f, `${revoked}/1`)).status).toBe(403);
    clock = new Date(clock.getTime() + 60_000);
    for (const path of [expiring, `${expiring}/1`, `${expiring}/1/image`]) {
      expect((await get(f, path)).status, path).toBe(403);
    }
    const post = await answer(f, `${expiring}/1`, { csrf, quality: "4", faithfulness: "4" });
    expect(post.status).toBe(403);
    expect(await f.eventCount()).toBe(0);
  });

  it("sends the secure headers with every kind of response", async () => {
    const f = await setup();
    const link = f.raterPath("kim");
    const responses = [
      await get(f, link), // 303
      await get(f, `${link}/1/image`),
      await get(f, `${link}/99`), // 404
      await get(f, "/s/not-a-link"), // 403
      await get(f, "/nowhere"),
      await get(f, "/healthz"),
    ];
    expect(responses.map((r) => r.status)).toEqual([303, 200, 404, 403, 404, 200]);
    for (const response of responses) {
      expect(response.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      expect(response.headers.get("cache-control")).not.toBeNull();
    }
  });

  it("refuses answers without the form token, from another site, or not as a form", async () => {
    const f = await setup();
    const link = f.raterPath("erin");
    const csrf = await formToken(f, link);
    const otherLinkCsrf = await formToken(f, f.raterPath("frank"));
    const scores = { quality: "2", faithfulness: "3" };
    const refused = [
      await answer(f, `${link}/1`, scores),
      await answer(f, `${link}/1`, { ...scores, csrf: otherLinkCsrf }),
      await answer(f, `${link}/1`, { ...scores, csrf }, { origin: "https://evil.example" }),
      await answer(f, `${link}/1`, { ...scores, csrf }, { "sec-fetch-site": "cross-site" }),
    ];
    expect(refused.map((r) => r.status)).toEqual([403, 403, 403, 403]);
    const json = await fetch(`${f.server.url}${link}/1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...scores, csrf }),
    });
    expect(json.status).toBe(400);
    const incomplete = await answer(f, `${link}/1`, { csrf, quality: "2" });
    expect(incomplete.status).toBe(400);
    expect(await incomplete.text()).toContain("Please answer both questions");
    expect((await answer(f, `${link}/1`, { csrf, quality: "5", faithfulness: "1" })).status).toBe(
      400,
    );
    const oversized = await answer(f, `${link}/1`, { ...scores, csrf, padding: "x".repeat(5000) });
    expect(oversized.status).toBe(400);
    expect(await f.eventCount()).toBe(0);
    const sameSite = await answer(
      f,
      `${link}/1`,
      { ...scores, csrf },
      { origin: f.server.url, "sec-fetch-site": "same-origin" },
    );
    expect(sameSite.status).toBe(303);
    expect(await f.eventCount()).toBe(2);
  });

  it("rate-limits each link on its own", async () => {
    const f = await setup({ limits: { answers: { burst: 2, perSecond: 0.001 } } });
    const link = f.raterPath("gina");
    const csrf = await formToken(f, link);
    const fields = { csrf, quality: "1", faithfulness: "1" };
    expect((await answer(f, `${link}/1`, fields)).status).toBe(303);
    expect((await answer(f, `${link}/2`, fields)).status).toBe(303);
    const limited = await answer(f, `${link}/3`, fields);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    const other = f.raterPath("hank");
    expect(
      (await answer(f, `${other}/1`, { ...fields, csrf: await formToken(f, other) })).status,
    ).toBe(303);
    expect(await f.eventCount()).toBe(6);
  });

  it("shows items not posted yet as not ready and refuses answers to them", async () => {
    const f = await setup({ unposted: 5, surveys: 1 });
    const link = f.raterPath("ivy");
    const csrf = await formToken(f, link);
    const last = `${link}/${f.surveySize}`;
    expect(await (await get(f, last)).text()).toContain("is not ready yet");
    expect((await get(f, `${last}/image`)).status).toBe(404);
    expect((await answer(f, last, { csrf, quality: "1", faithfulness: "1" })).status).toBe(409);
    expect(await f.eventCount()).toBe(0);
  });

  it("writes its own small CSS and JS into the page, allowed by hash and nothing else inline", async () => {
    const f = await setup();
    const policy = new Map(
      CONTENT_SECURITY_POLICY.split("; ").map((d) => [d.split(" ")[0], d.split(" ").slice(1)]),
    );
    expect(policy.get("script-src")).toEqual([SURVEY_JS.cspSource]);
    expect(policy.get("style-src")).toEqual([SURVEY_CSS.cspSource]);
    expect(policy.get("default-src")).toEqual(["'none'"]);
    // The admin page and a refusal carry the stylesheet only.
    for (const path of [f.adminPath(), "/s/not-a-link"]) {
      const html = await (await get(f, path)).text();
      expect(inlineCode(html).map(sha256Source)).toEqual([SURVEY_CSS.cspSource]);
    }
    expect((await get(f, "/assets/survey.css")).status).toBe(404);
    expect(SURVEY_CSS.body.length + SURVEY_JS.body.length).toBeLessThan(50 * 1024);
  });

  it("gives admins progress per rater, then exactly what study results prints once closed", async () => {
    const f = await setup();
    const admin = f.adminPath();
    expect((await get(f, f.raterPath("x").replace("/s/", "/admin/"))).status).toBe(403);
    for (const [rater, survey] of [
      ["ann", 1],
      ["ben", 1],
      ["cat", 2],
      ["dan", 2],
    ] as const) {
      const link = f.raterPath(rater, survey);
      const csrf = await formToken(f, link);
      for (let n = 1; n <= f.surveySize; n++) {
        const q = String(((n * 7 + rater.length) % 4) + 1);
        const fa = String(((n * 3 + rater.charCodeAt(0)) % 4) + 1);
        expect(
          (await answer(f, `${link}/${n}`, { csrf, quality: q, faithfulness: fa })).status,
        ).toBe(303);
      }
      expect((await get(f, link)).headers.get("location")).toBe(`${link}/done`);
    }
    const running = await (await get(f, admin)).text();
    expect(running).toContain(`<td>web:ann</td><td>${f.surveySize}</td><td>${f.surveySize}</td>`);
    expect(running).not.toContain("results-json");
    for (const arm of ARMS) expect(running).not.toContain(`>${arm}<`);

    await f.studies.stop(f.studyId);
    const closed = await (await get(f, admin)).text();
    const shown = /<pre id="results-json">([\s\S]*?)<\/pre>/.exec(closed)?.[1] ?? "";
    const cli = await studyCommand.execute(
      { studies: f.studies, votes: f.votes } as unknown as CommandContext,
      { action: "results", study: f.studyId, format: "json", chart: false },
    );
    const unescaped = shown
      .replaceAll("&quot;", '"')
      .replaceAll("&#39;", "'")
      .replaceAll("&lt;", "<")
      .replaceAll("&gt;", ">")
      .replaceAll("&amp;", "&");
    expect(unescaped).toBe(cli.text);
    expect(JSON.parse(unescaped).votes).toBe(4 * f.surveySize * 2);
    const chart = await get(f, `${admin}/chart.png`);
    expect(chart.status).toBe(200);
    expect(chart.headers.get("content-type")).toBe("image/png");
    // Closed: the survey shows answers read-only and refuses changes.
    const link = f.raterPath("ann");
    const page = await (await get(f, `${link}/1`)).text();
    expect(page).toContain("This study is closed");
    const csrf = csrfOf(page);
    expect((await answer(f, `${link}/1`, { csrf, quality: "1", faithfulness: "1" })).status).toBe(
      410,
    );
  });
});
