/**
 * A batch study ready to be rated on the web: plan items posted as generations with PNGs on
 * disk (each carrying a parameters chunk that names the prompt, as the image store writes it),
 * a memory vote store, the study manager, and a web server on 127.0.0.1 with a random port.
 * Shared by the HTTP tests, the browser test and bench/web.ts.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import {
  type RunningWebServer,
  startWebServer,
  type WebRateLimits,
} from "../../src/adapters/web/server.js";
import { withParametersChunk } from "../../src/core/image/png.js";
import { createLogger } from "../../src/core/logger.js";
import { createInvite, RevocationList } from "../../src/core/study/invite.js";
import { StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import type { Generation, Logger } from "../../src/core/types.js";
import { type KeyvVoteStore, openVoteStore } from "../../src/core/votes/index.js";

export const WEB_SECRET = "web-test-secret-0123456789abcdef-0123456789";
export const ARMS = ["base", "finetuned"] as const;

export interface WebFixture {
  dataDir: string;
  votes: KeyvVoteStore;
  studies: StudyManager;
  studyId: string;
  revocations: RevocationList;
  server: RunningWebServer;
  /** Items of each survey, 1-based survey → count. */
  surveySize: number;
  /** A rater link path (/s/…) for `rater` on `survey`. */
  raterPath(rater: string, survey?: number, lifetimeMs?: number): string;
  adminPath(): string;
  /** Every vote event in the store. */
  eventCount(): Promise<number>;
  close(): Promise<void>;
}

export interface WebFixtureOptions {
  /** Concepts × prompts × 2 arms items, dealt into `surveys`. */
  concepts?: string[];
  prompts?: number;
  surveys?: number;
  /** Leave the last n items of the plan unposted. */
  unposted?: number;
  limits?: Partial<WebRateLimits>;
  logger?: Logger;
  now?: () => Date;
  /** The vote store (default memory://); sqlite://votes.sqlite lands in the fixture's folder. */
  storeUrl?: string;
}

export async function webFixture(options: WebFixtureOptions = {}): Promise<WebFixture> {
  const dataDir = await mkdtemp(join(tmpdir(), "web-"));
  const logger = options.logger ?? createLogger({ level: "silent" });
  const votes = await openVoteStore(options.storeUrl ?? "memory://", { dataDir });
  const studies = new StudyManager({ dataDir, logger });
  const plan = makeStudyPlan({
    concepts: options.concepts ?? [
      "a lighthouse",
      "a red bicycle",
      "an old oak tree",
      "a harbour at dawn",
      "a teapot",
    ],
    promptsPerConcept: options.prompts ?? 2,
    arms: [...ARMS],
    surveys: options.surveys ?? 2,
    seed: 7,
  });
  const study = await studies.start({ mode: "batch", name: "Web study", arms: [...ARMS], plan });
  const posted = plan.items.slice(0, plan.items.length - (options.unposted ?? 0));
  await mkdir(join(dataDir, "images", "2026-01-01"), { recursive: true });
  for (const [i, item] of posted.entries()) {
    const id = `gen-${String(i).padStart(4, "0")}`;
    const path = `images/2026-01-01/${id}.png`;
    const shade = (i * 37) % 256;
    const png = await sharp({
      create: { width: 32, height: 32, channels: 3, background: { r: shade, g: 90, b: 200 } },
    })
      .png()
      .toBuffer();
    await writeFile(
      join(dataDir, path),
      withParametersChunk(png, `${item.concept}, secret prompt of arm ${item.arm}\nModel: sd-test`),
    );
    const generation: Generation = {
      id,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      platform: "discord",
      channel: "c1",
      requester: `study:${study.id}`,
      subject: item.concept,
      arm: item.arm,
      prompt: `${item.concept}, secret prompt of arm ${item.arm}`,
      promptComplete: true,
      seed: item.seed,
      image: {
        backend: "fake",
        model: "sd-test",
        width: 32,
        height: 32,
        steps: 1,
        guidance: 7,
        path,
      },
      timings: { queuedMs: 0, promptMs: 0, renderMs: 0, totalMs: 0 },
      studyId: study.id,
    };
    await votes.saveGeneration(generation);
    await studies.markPosted(study.id, item.id);
  }
  const revocations = new RevocationList(dataDir);
  const server = await startWebServer({
    settings: { secret: WEB_SECRET, host: "127.0.0.1", port: 0 },
    dataDir,
    votes,
    studies,
    logger,
    revocations,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  let counter = 0;
  const link = (role: "rater" | "admin", rater: string, survey: number, lifetimeMs: number) =>
    createInvite({
      secret: WEB_SECRET,
      role,
      studyId: study.id,
      rater,
      survey,
      lifetimeMs,
      randomBytes: (size) => Buffer.alloc(size, ++counter),
      ...(options.now ? { now: options.now() } : {}),
    }).token;
  return {
    dataDir,
    votes,
    studies,
    studyId: study.id,
    revocations,
    server,
    surveySize: plan.items.filter((item) => item.survey === 1).length,
    raterPath: (rater, survey = 1, lifetimeMs = 86_400_000) =>
      `/s/${link("rater", rater, survey, lifetimeMs)}`,
    adminPath: () => `/admin/${link("admin", "researcher", 0, 86_400_000)}`,
    async eventCount() {
      let n = 0;
      for await (const _ of votes.events()) n++;
      return n;
    },
    async close() {
      await server.close();
      await studies.close();
      await votes.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The hidden CSRF field of a survey page. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (match === null) {
    // Say which page came instead (a refusal, an error, an image not ready), not only that.
    const title = /<title>([^<]*)<\/title>/.exec(html)?.[1] ?? html.slice(0, 80);
    throw new Error(`the page has no form token: "${title}"`);
  }
  return match[1] as string;
}
