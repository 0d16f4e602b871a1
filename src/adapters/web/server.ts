/**
 * The web surface for raters outside chat and for the researcher: a rater's survey (one image
 * at a time, Likert 1–4 for quality and faithfulness, keyboard-only, resumable) and an admin
 * results page, on Hono over Node's HTTP server, bound to 127.0.0.1 by default.
 *
 *   GET  /s/:token              resume: to the first unanswered image (or /done)
 *   GET  /s/:token/:n           image n of the survey, with the rater's current answers
 *   POST /s/:token/:n           answer image n (form: csrf, quality, faithfulness) → 303 to n+1
 *   GET  /s/:token/:n/image     the image, metadata stripped (withoutMetadata)
 *   GET  /s/:token/done         the end: what is still open
 *   GET  /admin/:token          progress per rater; once closed, `study results` in full
 *   GET  /admin/:token/chart.png
 *
 * Every link is verified (signature, expiry, revocation) before anything else; a bad link gets
 * the same 403 whatever was wrong with it, and records nothing. Images are addressed by their
 * position in the link's survey, never by file name or generation id.
 */

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { isAbsolute, relative, resolve } from "node:path";
import { createAdaptorServer } from "@hono/node-server";
import { type Context, Hono } from "hono";
import { reportResult } from "../../commands/stats.js";
import { withoutMetadata } from "../../core/image/png.js";
import {
  type Invite,
  InviteRejected,
  RevocationList,
  verifyInvite,
} from "../../core/study/invite.js";
import type { StudyManager } from "../../core/study/manager.js";
import { resultsJson } from "../../core/study/report.js";
import type { WebSettings } from "../../core/study/webSettings.js";
import { DIMENSIONS, type Dimension, type Logger } from "../../core/types.js";
import { donePage, escapeHtml, itemPage, messagePage, page } from "./html.js";
import {
  CsrfTokens,
  type RateLimit,
  RateLimiter,
  sameOrigin,
  securityHeaders,
} from "./security.js";
import { type Survey, Surveys, type SurveyVoteStore, WebRefusal } from "./survey.js";

export interface WebRateLimits {
  /** Answers (POSTs) per link. */
  answers: RateLimit;
  /** Pages and images (GETs) per link. */
  reads: RateLimit;
}

/** The most an answer form may send (two scores and a token are ~100 bytes). */
const MAX_FORM_BYTES = 4096;

/** A person answers at most a couple of images a second; a script gets 429s. */
export const DEFAULT_RATE_LIMITS: WebRateLimits = {
  answers: { burst: 30, perSecond: 3 },
  reads: { burst: 120, perSecond: 15 },
};

export interface WebServerOptions {
  settings: WebSettings;
  /** Where study images live (Generation.image.path is relative to it) and revocations go. */
  dataDir: string;
  votes: SurveyVoteStore;
  studies: StudyManager;
  logger: Logger;
  revocations?: RevocationList;
  limits?: Partial<WebRateLimits>;
  /** Wall clock for link expiry (tests). */
  now?: () => Date;
}

export interface RunningWebServer {
  /** Where the server listens, e.g. http://127.0.0.1:8787 (no trailing slash). */
  url: string;
  /** The base URL links are printed under: settings.publicUrl, else `url`. */
  publicUrl: string;
  close(): Promise<void>;
}

/** Starts the web server; rejects with a clear error when the address cannot be bound. */
export async function startWebServer(options: WebServerOptions): Promise<RunningWebServer> {
  const { settings } = options;
  let boundOrigin = "";
  const app = createWebApp(options, () => boundOrigin);
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolveListen, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `the web server cannot listen on ${settings.host}:${settings.port} (${error.code ?? error.message}); set IMAGINE_WEB_PORT or IMAGINE_WEB_HOST`,
        ),
      );
    server.once("error", failed);
    server.listen(settings.port, settings.host, () => {
      server.off("error", failed);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  boundOrigin = url;
  options.logger.info({ url, publicUrl: settings.publicUrl ?? url }, "web server listening");
  let closing: Promise<void> | undefined;
  return {
    url,
    publicUrl: settings.publicUrl ?? url,
    close() {
      closing ??= new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** The Hono app (exported for callers that mount it elsewhere). */
export function createWebApp(options: WebServerOptions, boundOrigin: () => string = () => "") {
  const { settings, votes, studies } = options;
  const logger = options.logger.child({ component: "web" });
  const revocations = options.revocations ?? new RevocationList(options.dataDir);
  const now = options.now ?? (() => new Date());
  const limits = { ...DEFAULT_RATE_LIMITS, ...options.limits };
  const answerLimiter = new RateLimiter(limits.answers);
  const readLimiter = new RateLimiter(limits.reads);
  const surveys = new Surveys(votes, studies, logger);
  const links = new VerifiedLinks(settings.secret, revocations);
  const csrf = new CsrfTokens(settings.secret);
  const headers = securityHeaders(settings.publicUrl?.startsWith("https:") ?? false);
  const dataDir = resolve(options.dataDir);
  const results = new ResultsCache(studies, votes);
  // Every rater of a survey loads the same images: keep the stripped bytes of the recent ones.
  const images = new ImageCache(64 * 1024 * 1024);
  // Built again only when the bound origin changes (it is known once the server listens).
  let knownOrigins: { bound: string; origins: ReadonlySet<string> } | undefined;
  const origins = () => {
    const bound = boundOrigin();
    if (knownOrigins?.bound !== bound) {
      const publicOrigin = settings.publicUrl ? new URL(settings.publicUrl).origin : "";
      knownOrigins = { bound, origins: new Set([bound, publicOrigin].filter((o) => o !== "")) };
    }
    return knownOrigins.origins;
  };

  const app = new Hono();

  // Responses made here carry every header from the start, in a plain object: the Node adapter
  // then writes them straight out, where setting them on a finished response would build a
  // WHATWG Headers object per request (a tenth of the server's CPU under load).
  const secured = new WeakSet<Response>();
  function respond(
    body: string | Uint8Array<ArrayBuffer> | null,
    status: number,
    extra: Record<string, string> = {},
  ): Response {
    const response = new Response(body, {
      status,
      headers: { ...headers, "Cache-Control": "no-store", ...extra },
    });
    secured.add(response);
    return response;
  }
  const html = (body: string, status = 200, extra: Record<string, string> = {}) =>
    respond(body, status, { "Content-Type": "text/html; charset=UTF-8", ...extra });
  const redirect = (location: string) => respond(null, 303, { Location: location });

  app.use(async (c, next) => {
    await next();
    if (secured.has(c.res)) return;
    for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
    if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
  });

  app.onError((error, c) => {
    if (error instanceof WebRefusal) {
      return html(
        messagePage(refusalTitle(error.status), error.message),
        error.status,
        error.retryAfterSeconds === undefined
          ? {}
          : { "Retry-After": String(error.retryAfterSeconds) },
      );
    }
    const reference = Math.random().toString(36).slice(2, 10);
    logger.error({ err: error, reference, path: redactPath(c.req.path) }, "web request failed");
    return html(
      messagePage("Something went wrong", `Please try again in a moment (reference ${reference}).`),
      500,
    );
  });

  app.notFound(() => html(messagePage("Not found", "There is no page here."), 404));

  app.get("/healthz", () => respond("ok", 200, { "Content-Type": "text/plain; charset=UTF-8" }));
  // Browsers ask for it on every first visit; an empty answer keeps their consoles clean.
  app.get("/favicon.ico", () => respond(null, 204));

  /** Verifies the link of a request; every failure is the same 403 (the reason is logged). */
  async function grant(c: Context, role: Invite["role"], limiter: RateLimiter): Promise<Invite> {
    const token = c.req.param("token") ?? "";
    let invite: Invite;
    try {
      invite = await links.verify(token, now());
    } catch (error) {
      if (!(error instanceof InviteRejected)) throw error;
      logger.warn({ reason: error.reason, path: redactPath(c.req.path) }, "web link refused");
      throw new WebRefusal(
        403,
        "This link is not valid: it may have expired or been withdrawn. Ask the researcher for a new one.",
      );
    }
    if (invite.role !== role) {
      logger.warn({ link: invite.id, role: invite.role, wanted: role }, "web link refused");
      throw new WebRefusal(403, "This link does not open this page.");
    }
    const wait = limiter.take(invite.id);
    if (wait > 0) {
      throw new WebRefusal(
        429,
        "Too many requests from this link: wait a moment and try again.",
        wait,
      );
    }
    return invite;
  }

  async function raterSurvey(c: Context, limiter: RateLimiter) {
    const invite = await grant(c, "rater", limiter);
    const survey = await surveys.survey(invite);
    const base = `/s/${c.req.param("token")}`;
    return { invite, survey, base };
  }

  function entryAt(survey: Survey, c: Context) {
    const text = c.req.param("n") ?? "";
    const position = /^[1-9]\d{0,4}$/.test(text) ? Number(text) : 0;
    const entry = survey.items[position - 1];
    if (entry === undefined) {
      throw new WebRefusal(404, `There is no image ${text} in this survey.`);
    }
    return entry;
  }

  app.get("/s/:token", async (c) => {
    const { survey, base } = await raterSurvey(c, readLimiter);
    const answers = await surveys.answers(survey);
    const open = survey.items.find((entry) => !complete(answers.get(entry.position)));
    return redirect(open === undefined ? `${base}/done` : `${base}/${open.position}`);
  });

  app.get("/s/:token/done", async (c) => {
    const { survey, base } = await raterSurvey(c, readLimiter);
    const answers = await surveys.answers(survey);
    const missing = survey.items
      .filter((entry) => !complete(answers.get(entry.position)))
      .map((entry) => entry.position);
    return html(donePage(base, survey.items.length, survey.items.length - missing.length, missing));
  });

  async function renderItem(c: Context, error?: string, status: 200 | 400 = 200) {
    const { invite, survey, base } = await raterSurvey(c, readLimiter);
    const entry = entryAt(survey, c);
    const answers = await surveys.answers(survey);
    const answered = [...answers.values()].filter(complete).length;
    return html(
      itemPage({
        base,
        position: entry.position,
        total: survey.items.length,
        answered,
        subject: entry.item.concept,
        ready: entry.generation !== undefined,
        answers: answers.get(entry.position) ?? {},
        csrf: csrf.of(invite.id),
        closed: survey.study.status === "closed",
        ...(entry.generation === undefined
          ? {}
          : {
              image: {
                width: entry.generation.image.width,
                height: entry.generation.image.height,
              },
            }),
        ...(error === undefined ? {} : { error }),
      }),
      status,
    );
  }

  app.get("/s/:token/:n", (c) => renderItem(c));

  app.post("/s/:token/:n", async (c) => {
    const { invite, survey, base } = await raterSurvey(c, answerLimiter);
    const entry = entryAt(survey, c);
    if (!sameOrigin(c.req.raw.headers, origins())) {
      logger.warn({ link: invite.id }, "cross-site answer refused");
      throw new WebRefusal(403, "This answer did not come from the survey page.");
    }
    const type = c.req.header("content-type") ?? "";
    if (!type.startsWith("application/x-www-form-urlencoded")) {
      throw new WebRefusal(400, "Answers are sent by the survey page's form.");
    }
    // A form of two scores and a token is ~100 bytes, and browsers declare a form's length:
    // a larger or undeclared body is not the page's, and is refused before it is read.
    const length = Number(c.req.header("content-length") ?? Number.NaN);
    if (!(length <= MAX_FORM_BYTES)) {
      throw new WebRefusal(400, "Answers are sent by the survey page's form.");
    }
    const form = new URLSearchParams(await c.req.text());
    if (!csrf.matches(invite.id, form.get("csrf"))) {
      logger.warn({ link: invite.id }, "answer without a valid form token refused");
      throw new WebRefusal(403, "This form has expired: reload the page and answer again.");
    }
    if (survey.study.status === "closed") {
      throw new WebRefusal(410, "This study is closed: answers can no longer change.");
    }
    const scores = {} as Record<Dimension, number>;
    for (const dimension of DIMENSIONS) {
      const value = form.get(dimension);
      const score = value !== null && /^[1-4]$/.test(value) ? Number(value) : 0;
      if (score === 0) {
        return renderItem(c, "Please answer both questions (1 to 4) before going on.", 400);
      }
      scores[dimension] = score;
    }
    const cast = await surveys.record(survey, entry, scores);
    logger.debug(
      { link: invite.id, studyId: survey.study.id, position: entry.position, cast },
      "web answer",
    );
    const next =
      entry.position < survey.items.length ? `${base}/${entry.position + 1}` : `${base}/done`;
    return redirect(next);
  });

  app.get("/s/:token/:n/image", async (c) => {
    const { survey } = await raterSurvey(c, readLimiter);
    const generation = entryAt(survey, c).generation;
    if (generation === undefined) throw new WebRefusal(404, "This image is not ready yet.");
    const file = resolve(dataDir, generation.image.path);
    const inside = relative(dataDir, file);
    if (inside.startsWith("..") || isAbsolute(inside)) {
      // A stored path that leaves the data directory is never served.
      logger.error({ generationId: generation.id }, "image path outside the data directory");
      throw new WebRefusal(404, "This image is not available.");
    }
    const image = await images.get(generation.id, async () => {
      let png: Buffer;
      try {
        png = withoutMetadata(await readFile(file));
      } catch (error) {
        logger.error({ err: error, generationId: generation.id }, "study image unreadable");
        throw new WebRefusal(404, "This image is not available.");
      }
      // Of the bytes sent, so it names nothing but the picture (no id, no path).
      const etag = `"${createHash("sha256").update(png).digest("base64url").slice(0, 22)}"`;
      return { png, etag };
    });
    // A browser's next visit (back to an earlier image, a reload) revalidates for free.
    const caching = { "Cache-Control": "private, max-age=3600", ETag: image.etag };
    const known = c.req.header("if-none-match");
    if (known?.split(",").some((tag) => tag.trim() === image.etag)) {
      return respond(null, 304, caching);
    }
    return respond(image.png as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "image/png",
      ...caching,
    });
  });

  app.get("/admin/:token", async (c) => {
    const invite = await grant(c, "admin", readLimiter);
    const study = await studies.get(invite.studyId);
    if (study === undefined) throw new WebRefusal(404, "This study does not exist any more.");
    const progress = await raterProgress(votes, study.id);
    const planned = study.plan ? planSurveyTotals(study.plan.items) : undefined;
    const rows = [...progress.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([rater, counts]) =>
          `<tr><td>${escapeHtml(rater)}</td><td>${counts.quality}</td><td>${counts.faithfulness}</td></tr>`,
      )
      .join("\n");
    const posted =
      study.mode === "batch" ? (study.posted?.length ?? 0) : (study.assignment?.assigned ?? 0);
    let resultsHtml = `<p>Results appear here once the study is closed (<code>imagine-bot study stop ${escapeHtml(study.id)}</code>).</p>`;
    if (study.status === "closed") {
      const report = await results.get(study.id);
      resultsHtml =
        report.votes === 0
          ? `<p>The study is closed. No votes were recorded.</p><pre id="results-json">${escapeHtml(report.json)}</pre>`
          : `<h2>Results</h2>
<pre id="results-table">${escapeHtml(report.table)}</pre>
<img src="/admin/${c.req.param("token")}/chart.png" alt="Mean quality and faithfulness per arm, with 95% intervals" width="800" height="450" class="chart">
<h2>As JSON (<code>study results ${escapeHtml(study.id)} --format json</code>)</h2>
<pre id="results-json">${escapeHtml(report.json)}</pre>`;
    }
    return html(
      page(
        `Study ${study.name}`,
        `<h1>Study ${escapeHtml(study.name)} <small>(${escapeHtml(study.id)})</small></h1>
<p>Status: <strong id="study-status">${study.status}</strong> · images posted: ${posted}${study.plan ? ` of ${study.plan.items.length}` : ""}${planned ? ` · surveys: ${planned.map((n, i) => `${i + 1}: ${n} images`).join(", ")}` : ""}</p>
<h2>Progress per rater</h2>
<table id="progress">
<thead><tr><th scope="col">Rater</th><th scope="col">Quality answers</th><th scope="col">Faithfulness answers</th></tr></thead>
<tbody>
${rows || `<tr><td colspan="3">No votes yet.</td></tr>`}
</tbody>
</table>
${resultsHtml}`,
      ),
    );
  });

  app.get("/admin/:token/chart.png", async (c) => {
    const invite = await grant(c, "admin", readLimiter);
    const study = await studies.get(invite.studyId);
    if (study?.status !== "closed") throw new WebRefusal(404, "No chart before the study closes.");
    const report = await results.get(study.id);
    if (report.chart === undefined) throw new WebRefusal(404, "No votes to chart.");
    return respond(new Uint8Array(report.chart), 200, { "Content-Type": "image/png" });
  });

  return app;
}

function complete(answers: Partial<Record<Dimension, number>> | undefined): boolean {
  return answers !== undefined && DIMENSIONS.every((d) => answers[d] !== undefined);
}

/** Links are credentials: logs name the route, never the token. */
function redactPath(path: string): string {
  return path.replace(/^\/(s|admin)\/[^/]+/, "/$1/…");
}

function refusalTitle(status: number): string {
  return (
    {
      400: "Please check your answer",
      403: "Link not valid",
      404: "Not found",
      409: "Not ready",
      410: "Study closed",
      429: "Slow down",
    }[status] ?? "Refused"
  );
}

function planSurveyTotals(items: readonly { survey: number }[]): number[] {
  const totals: number[] = [];
  for (const item of items) totals[item.survey - 1] = (totals[item.survey - 1] ?? 0) + 1;
  return totals;
}

/** Current votes per rater and dimension in one study (counts only: no arm leaves here). */
async function raterProgress(votes: SurveyVoteStore, studyId: string) {
  const progress = new Map<string, Record<Dimension, number>>();
  for await (const vote of votes.studyVotes(studyId)) {
    const counts = progress.get(vote.rater) ?? { quality: 0, faithfulness: 0 };
    counts[vote.dimension]++;
    progress.set(vote.rater, counts);
  }
  return progress;
}

/**
 * A closed study's results as `study results` makes them (StudyManager.results, then the
 * command's report), kept for a few seconds so the page and its chart agree and a reload does
 * not rerun the bootstrap.
 */
class ResultsCache {
  private readonly cache = new Map<
    string,
    { at: number; value: Promise<{ votes: number; table: string; json: string; chart?: Buffer }> }
  >();

  constructor(
    private readonly studies: StudyManager,
    private readonly votes: SurveyVoteStore,
  ) {}

  get(studyId: string) {
    const cached = this.cache.get(studyId);
    if (cached && performance.now() - cached.at < 10_000) return cached.value;
    const value = this.compute(studyId);
    this.cache.set(studyId, { at: performance.now(), value });
    value.catch(() => this.cache.delete(studyId));
    return value;
  }

  private async compute(studyId: string) {
    const report = await this.studies.results(studyId, this.votes);
    const title = `Study ${report.study.name} (${report.study.id})`;
    const hasVotes = report.summaries.length > 0;
    const table = await reportResult(report, title, "table", hasVotes);
    return {
      votes: report.votes,
      table: table.text,
      json: `${JSON.stringify(resultsJson(report), null, 2)}\n`,
      ...(hasVotes ? { chart: table.files[0]?.content as Buffer } : {}),
    };
  }
}

/** A study image as served: its bytes without metadata, and their entity tag. */
interface ServedImage {
  png: Buffer;
  etag: string;
}

/**
 * Stripped PNGs (with their ETag) by generation id, the least recently used dropped beyond `maxBytes`. Raters of
 * a survey move through it together: the first request for an image reads it, and those that
 * come while it is being read share that read.
 */
class ImageCache {
  private readonly entries = new Map<string, ServedImage>();
  private readonly reading = new Map<string, Promise<ServedImage>>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  async get(id: string, read: () => Promise<ServedImage>): Promise<ServedImage> {
    const png = this.entries.get(id);
    if (png !== undefined) {
      this.entries.delete(id);
      this.entries.set(id, png);
      return png;
    }
    let pending = this.reading.get(id);
    if (pending === undefined) {
      pending = read().then(
        (read) => {
          this.reading.delete(id);
          this.set(id, read);
          return read;
        },
        (error: unknown) => {
          this.reading.delete(id);
          throw error;
        },
      );
      this.reading.set(id, pending);
    }
    return pending;
  }

  private set(id: string, image: ServedImage): void {
    if (image.png.length > this.maxBytes || this.entries.has(id)) return;
    this.entries.set(id, image);
    this.bytes += image.png.length;
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= old.png.length;
    }
  }
}

/**
 * Links whose signature has been checked, by token: the signature of a given token never
 * changes, so it is checked (HMAC, then decoding and validating the payload) once; expiry and
 * revocation are checked on every request. Bounded: past `max` tokens it starts again.
 */
class VerifiedLinks {
  private readonly verified = new Map<string, Invite>();

  constructor(
    private readonly secret: string,
    private readonly revocations: RevocationList,
    private readonly max = 10_000,
  ) {}

  async verify(token: string, now: Date): Promise<Invite> {
    const known = this.verified.get(token);
    if (known === undefined) {
      const invite = await verifyInvite(this.secret, token, {
        now,
        revocations: this.revocations,
      });
      if (this.verified.size >= this.max) this.verified.clear();
      this.verified.set(token, invite);
      return invite;
    }
    if (now.getTime() >= known.expiresAt.getTime()) throw new InviteRejected("expired");
    if (await this.revocations.isRevoked(known)) throw new InviteRejected("revoked");
    return known;
  }
}
