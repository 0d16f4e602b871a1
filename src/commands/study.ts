/**
 * `study`: blind comparisons of arms. Admin-only.
 *   start   live: every /imagine in the channels (default: this one) gets an arm chosen blind
 *           and balanced; batch: the paper's plan (concepts × prompts × arms in surveys), posted
 *           at a steady pace by the adapter
 *   stop    closes a study (assignment and posting end; results can be shown)
 *   status  one study, or every study — never an image's arm
 *   results a closed study's Table 1 with image-bootstrap CIs, agreement, image-level
 *           permutation tests (Mann–Whitney secondary) and the chart
 */
import { randomInt } from "node:crypto";
import { z } from "zod";
import { UserError } from "../core/errors.js";
import { makeStudyLink } from "../core/study/links.js";
import type { StudyManager } from "../core/study/manager.js";
import { makeStudyPlan } from "../core/study/plan.js";
import { type PublicStudy, publicStudy } from "../core/study/record.js";
import { WEB_SECRET_VARIABLE } from "../core/study/webSettings.js";
import type { Command, CommandContext } from "./command.js";
import { FORMATS, missing, type ReportResult, reportResult, requireVotes } from "./stats.js";

export const STUDY_ACTIONS = ["start", "stop", "status", "results", "invite"] as const;

const options = z.object({
  action: z.enum(STUDY_ACTIONS).describe("start, stop, status, results or invite"),
  study: z.string().optional().describe("the study id (stop, results; status of one study)"),
  name: z.string().max(100).optional().describe("start: a name for the study"),
  mode: z
    .enum(["live", "batch"])
    .optional()
    .describe("start: live (default) or batch (the paper's plan)"),
  arms: z
    .string()
    .optional()
    .describe("start: arms to compare, comma-separated (default: every configured arm)"),
  channels: z
    .string()
    .optional()
    .describe("start: channel ids, comma-separated (default: this channel)"),
  concepts: z.string().optional().describe("batch: subjects, comma-separated"),
  prompts: z
    .number()
    .int()
    .min(1)
    .max(50)
    .optional()
    .describe("batch: prompts per concept and arm (default 5)"),
  surveys: z
    .number()
    .int()
    .min(1)
    .max(100)
    .optional()
    .describe("batch: surveys to split into (default 2)"),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional()
    .describe("batch: plan seed (default: random)"),
  format: z.enum(FORMATS).optional().describe("results: table (default), json or csv"),
  bootstrap: z
    .enum(["images", "images-raters"])
    .optional()
    .describe(
      "results: what the CIs resample: images (default) or images and raters (two-way, when raters are a sample too)",
    ),
  chart: z.boolean().optional().describe("results: attach the chart (default true)"),
  rater: z
    .string()
    .max(64)
    .optional()
    .describe("invite: the rater's name (web votes are stored as web:<name>)"),
  survey: z.number().int().min(1).max(1000).optional().describe("invite: which survey"),
  expires: z.string().max(10).optional().describe("invite: how long the link works (14d)"),
  admin: z.boolean().optional().describe("invite: a link to the progress and results page"),
});

export type StudyOptions = z.infer<typeof options>;

export const studyCommand = {
  name: "study",
  description: "Blind studies comparing arms: start, stop, status, results, invite",
  options,
  adminOnly: true,
  async execute(context, input): Promise<ReportResult> {
    const parsed = options.parse(input);
    const studies = context.studies;
    if (studies === undefined) throw missing("study manager (context.studies)");
    switch (parsed.action) {
      case "start":
        return start(context, studies, parsed);
      case "stop": {
        const record = await studies.stop(requireId(parsed));
        const view = publicStudy(record);
        return {
          kind: "report",
          text: `Closed study ${view.name} (${view.id}) after ${view.images} images. Results: study results ${view.id}\n`,
          data: view,
          files: [],
        };
      }
      case "status": {
        const views =
          parsed.study === undefined
            ? (await studies.list()).map(publicStudy)
            : [publicStudy(await studies.require(parsed.study))];
        return {
          kind: "report",
          text: views.length === 0 ? "No studies yet.\n" : views.map(formatStudy).join("\n"),
          data: views,
          files: [],
        };
      }
      case "invite":
        return invite(context, studies, parsed);
      case "results": {
        const results = await studies.results(
          requireId(parsed),
          requireVotes(context),
          parsed.bootstrap === undefined ? {} : { unit: parsed.bootstrap },
        );
        return reportResult(
          results,
          `Study ${results.study.name} (${results.study.id})`,
          parsed.format ?? "table",
          parsed.chart ?? results.summaries.length > 0,
        );
      }
    }
  },
} satisfies Command<typeof options, ReportResult>;

/**
 * A signed web-survey link, for the admin who asked only (a rater's link is as good as their
 * vote): `private` keeps it out of the channel.
 */
async function invite(
  context: CommandContext,
  studies: StudyManager,
  parsed: StudyOptions,
): Promise<ReportResult> {
  if (context.web === undefined) {
    throw new UserError(
      "USAGE",
      `web survey links are not set up here: the operator sets ${WEB_SECRET_VARIABLE} (and IMAGINE_WEB_URL) and restarts the bot`,
    );
  }
  if (!parsed.admin && parsed.rater === undefined) {
    throw new UserError("USAGE", "study invite needs a rater's name (or admin)");
  }
  const { url, invite: link } = await makeStudyLink(studies, context.web, {
    studyId: requireId(parsed),
    ...(parsed.rater === undefined ? {} : { rater: parsed.rater }),
    ...(parsed.survey === undefined ? {} : { survey: parsed.survey }),
    ...(parsed.expires === undefined ? {} : { expires: parsed.expires }),
    ...(parsed.admin ? { admin: true } : {}),
  });
  const who = parsed.admin ? "the results page" : `${link.rater}, survey ${link.survey}`;
  return {
    kind: "report",
    text: `Link for ${who} (expires ${link.expiresAt.toISOString()}):\n${url}\n`,
    data: { url, link: link.id, study: link.studyId, expiresAt: link.expiresAt.toISOString() },
    files: [],
    private: true,
  };
}

async function start(
  context: CommandContext,
  studies: StudyManager,
  parsed: StudyOptions,
): Promise<ReportResult> {
  // Configured arms and the ones `models pull` registered.
  const configured = context.arms.names;
  const arms = parsed.arms === undefined ? configured : list(parsed.arms);
  const unknown = arms.filter((arm) => !configured.includes(arm));
  if (unknown.length > 0) {
    throw new UserError(
      "USAGE",
      `unknown arm${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (configured: ${configured.join(", ")})`,
    );
  }
  const channels =
    parsed.channels === undefined
      ? context.invocation?.channel === undefined
        ? []
        : [context.invocation.channel]
      : list(parsed.channels);
  const name = parsed.name ?? `study ${new Date().toISOString().slice(0, 10)}`;
  const createdBy = context.invocation?.user;
  if ((parsed.mode ?? "live") === "live") {
    const record = await studies.start({
      mode: "live",
      name,
      arms,
      channels,
      ...(createdBy ? { createdBy } : {}),
    });
    const view = publicStudy(record);
    return {
      kind: "report",
      text: `Started live study ${view.name} (${view.id}): /imagine in ${view.channels.join(", ")} now gets one of ${view.arms.length} arms, blind and balanced.\n`,
      data: view,
      files: [],
    };
  }
  const concepts = parsed.concepts === undefined ? [] : list(parsed.concepts);
  if (concepts.length === 0)
    throw new UserError("USAGE", "a batch study needs concepts (comma-separated)");
  let plan: ReturnType<typeof makeStudyPlan>;
  try {
    plan = makeStudyPlan({
      concepts,
      arms,
      promptsPerConcept: parsed.prompts ?? 5,
      surveys: parsed.surveys ?? 2,
      // A random seed is kept in the study file only: whoever knows it can rebuild the arms.
      seed: parsed.seed ?? randomInt(2 ** 32 - 1),
    });
  } catch (error) {
    throw new UserError("USAGE", (error as Error).message);
  }
  const record = await studies.start({
    mode: "batch",
    name,
    arms,
    plan,
    channels,
    ...(createdBy ? { createdBy } : {}),
  });
  const posting = await studies.startPosting(record.id);
  const view = publicStudy(record);
  return {
    kind: "report",
    text:
      `Started batch study ${view.name} (${view.id}): ${view.planned} images in ${plan.surveys} surveys.\n` +
      (posting
        ? "Posting has begun at a steady pace.\n"
        : `Nothing posts them here: run it where a poster is configured (the bot resumes running batch studies at start-up).\n`),
    data: { ...view, posting },
    files: [],
  };
}

function formatStudy(view: PublicStudy): string {
  const lines = [
    `${view.name} (${view.id}): ${view.mode}, ${view.status}`,
    `  arms: ${view.arms.join(", ")}`,
    ...(view.channels.length > 0 ? [`  channels: ${view.channels.join(", ")}`] : []),
    `  images: ${view.images}${view.planned === undefined ? "" : ` of ${view.planned}`}`,
    ...(view.design === undefined
      ? []
      : [
          `  design: ${view.design.concepts.length} concepts × ${view.design.promptsPerConcept} prompts × ${view.arms.length} arms in ${view.design.surveys} surveys`,
        ]),
    `  started ${view.createdAt}${view.closedAt === undefined ? "" : `, closed ${view.closedAt}`}`,
  ];
  return `${lines.join("\n")}\n`;
}

function requireId(parsed: StudyOptions): string {
  if (parsed.study === undefined)
    throw new UserError("USAGE", `study ${parsed.action} needs the study id`);
  return parsed.study;
}

function list(text: string): string[] {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
}
