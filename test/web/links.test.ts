import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyInvite } from "../../src/core/study/invite.js";
import { makeStudyLink } from "../../src/core/study/links.js";
import { StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";

const settings = {
  secret: "links-test-secret-0123456789abcdef-0123",
  host: "127.0.0.1",
  port: 8787,
};
let dir: string;
let studies: StudyManager;
let single = "";
let double = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "links-"));
  studies = new StudyManager({ dataDir: dir });
  const plan = (surveys: number) =>
    makeStudyPlan({
      concepts: ["a", "b"],
      promptsPerConcept: 1,
      arms: ["x", "y"],
      surveys,
      seed: 3,
    });
  single = (await studies.start({ mode: "batch", name: "one", arms: ["x", "y"], plan: plan(1) }))
    .id;
  double = (await studies.start({ mode: "batch", name: "two", arms: ["x", "y"], plan: plan(2) }))
    .id;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("makeStudyLink (CLI and chat)", () => {
  it("signs a rater link for the only survey, and an admin link, under the bound address", async () => {
    const { url, invite } = await makeStudyLink(studies, settings, {
      studyId: single,
      rater: "ann",
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:8787\/s\/v1\./);
    expect(invite).toMatchObject({ role: "rater", survey: 1, rater: "ann", studyId: single });
    expect(await verifyInvite(settings.secret, url.split("/s/")[1] as string)).toEqual(invite);
    const admin = await makeStudyLink(
      studies,
      { ...settings, publicUrl: "https://x.org" },
      {
        studyId: double,
        admin: true,
        expires: "2h",
      },
    );
    expect(admin.url).toMatch(/^https:\/\/x\.org\/admin\/v1\./);
    expect(admin.invite).toMatchObject({ role: "admin", rater: "admin", survey: 0 });
  });

  it("refuses what cannot make a working link", async () => {
    const refused: [Parameters<typeof makeStudyLink>[2], RegExp][] = [
      [{ studyId: double, rater: "ann" }, /has 2 surveys: say which/],
      [{ studyId: double, rater: "ann", survey: 3 }, /has 2 surveys, not 3/],
      [{ studyId: double }, /needs the rater's name/],
      [{ studyId: double, rater: "a/b", survey: 1 }, /not a rater name/],
      [{ studyId: double, admin: true, survey: 1 }, /leave out the survey/],
      [{ studyId: double, rater: "ann", survey: 1, expires: "1y" }, /not a duration/],
      [{ studyId: "nope-0000", rater: "ann" }, /no study nope-0000/],
    ];
    for (const [request, message] of refused) {
      await expect(makeStudyLink(studies, settings, request)).rejects.toThrow(message);
    }
  });
});
