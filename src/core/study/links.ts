/**
 * Making a study's web link, for `imagine-bot study invite` and for chat (an admin's
 * `/imagine study invite`, answered privately): checks the study, the rater and the survey,
 * signs the link and prints it under the public URL.
 */
import { UserError } from "../errors.js";
import { createInvite, type Invite, parseDuration, RATER_NAME } from "./invite.js";
import type { StudyManager } from "./manager.js";
import type { WebSettings } from "./webSettings.js";

export interface StudyLinkRequest {
  studyId: string;
  /** The rater's name (votes are stored as web:<name>); admin links default to "admin". */
  rater?: string;
  /** Which survey of the plan; may be left out when the plan has one. */
  survey?: number;
  /** "14d", "12h", … (default 14d). */
  expires?: string;
  admin?: boolean;
}

export interface StudyLink {
  url: string;
  invite: Invite;
}

export async function makeStudyLink(
  studies: StudyManager,
  settings: Pick<WebSettings, "secret" | "host" | "port" | "publicUrl">,
  request: StudyLinkRequest,
): Promise<StudyLink> {
  const record = await studies.require(request.studyId);
  const lifetimeMs = parseDuration(request.expires ?? "14d");
  const rater = request.rater ?? (request.admin ? "admin" : undefined);
  if (rater === undefined) throw new UserError("USAGE", "a rater link needs the rater's name");
  if (!RATER_NAME.test(rater)) {
    throw new UserError(
      "USAGE",
      `"${rater}" is not a rater name: 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  let survey = 0;
  if (request.admin) {
    if (request.survey !== undefined) {
      throw new UserError("USAGE", "an admin link covers the whole study: leave out the survey");
    }
  } else {
    const plan = record.plan;
    if (record.mode !== "batch" || plan === undefined) {
      throw new UserError(
        "USAGE",
        `study ${record.id} is a live study: it is rated in chat, it has no survey`,
      );
    }
    if (request.survey === undefined && plan.surveys > 1) {
      throw new UserError(
        "USAGE",
        `study ${record.id} has ${plan.surveys} surveys: say which with --survey 1…${plan.surveys}`,
      );
    }
    survey = request.survey ?? 1;
    if (!Number.isInteger(survey) || survey < 1 || survey > plan.surveys) {
      throw new UserError("USAGE", `study ${record.id} has ${plan.surveys} surveys, not ${survey}`);
    }
  }
  const { token, invite } = createInvite({
    secret: settings.secret,
    role: request.admin ? "admin" : "rater",
    studyId: record.id,
    rater,
    survey,
    lifetimeMs,
  });
  const base = settings.publicUrl ?? `http://${settings.host}:${settings.port}`;
  return { url: `${base}/${request.admin ? "admin" : "s"}/${token}`, invite };
}
