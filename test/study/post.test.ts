/** What a study post may show, and where each survey is posted. */
import { describe, expect, it } from "vitest";
import { makeStudyPlan, parsePlanItemId } from "../../src/core/study/plan.js";
import { studyPostView, surveyChannel } from "../../src/core/study/post.js";

describe("studyPostView", () => {
  it("gives a batch image its survey label and never the seed or the prompt", () => {
    const view = studyPostView({ studyId: "s", studyItem: "s2-007", subject: "a fox" });
    expect(view).toEqual({
      subject: "a fox",
      label: "Survey 2 · image 7",
      survey: 2,
      showSeed: false,
      showPrompt: false,
    });
  });

  it("hides seed and prompt for a live study's image too, without a label", () => {
    expect(studyPostView({ studyId: "s", subject: "a fox" })).toEqual({
      subject: "a fox",
      showSeed: false,
      showPrompt: false,
    });
  });

  it("is undefined outside studies (the ordinary reply applies)", () => {
    expect(studyPostView({ subject: "a fox" })).toBeUndefined();
  });

  it("reads every id a plan makes", () => {
    const plan = makeStudyPlan({
      concepts: ["a", "b", "c"],
      promptsPerConcept: 5,
      arms: ["x", "y"],
      surveys: 3,
      seed: 4,
    });
    for (const item of plan.items) {
      expect(parsePlanItemId(item.id)).toEqual({ survey: item.survey, position: item.position });
    }
    expect(parsePlanItemId("item-1")).toBeUndefined();
    expect(parsePlanItemId("s0-001")).toBeUndefined();
  });
});

describe("surveyChannel", () => {
  it("posts each survey to its own channel when there is one per survey", () => {
    expect(surveyChannel({ channels: ["c1", "c2"] }, { survey: 2 })).toBe("c2");
    expect(surveyChannel({ channels: ["c1"] }, { survey: 2 })).toBe("c1");
    expect(surveyChannel({ channels: [] }, { survey: 1 })).toBeUndefined();
  });
});
