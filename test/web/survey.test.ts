import { afterEach, describe, expect, it } from "vitest";
import { Surveys, type SurveyVoteStore } from "../../src/adapters/web/survey.js";
import { createLogger } from "../../src/core/logger.js";
import type { Invite } from "../../src/core/study/invite.js";
import type { Generation } from "../../src/core/types.js";
import { type WebFixture, webFixture } from "./fixture.js";

let fixture: WebFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

describe("survey items", () => {
  it("makes requests that arrive during a fresh server's first index read wait for it", async () => {
    const f = await webFixture();
    fixture = f;
    // The study's index read is held until the test lets it go, and says when it started.
    let started!: () => void;
    const reading = new Promise<void>((resolve) => {
      started = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const votes: SurveyVoteStore = Object.create(f.votes);
    votes.studyGenerations = async function* (studyId: string): AsyncIterable<Generation> {
      started();
      await released;
      yield* f.votes.studyGenerations(studyId);
    };
    // A clock at 0: the server process has only just started.
    const surveys = new Surveys(votes, f.studies, createLogger({ level: "silent" }), () => 0);
    const invite: Invite = {
      id: "link-1",
      role: "rater",
      studyId: f.studyId,
      rater: "ann",
      survey: 1,
      issuedAt: new Date(0),
      expiresAt: new Date(8.64e15),
    };

    const first = surveys.survey(invite);
    await reading;
    // The study record is cached now: this request has no I/O of its own before the index.
    let secondSettled = false;
    const second = surveys.survey(invite).finally(() => {
      secondSettled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(secondSettled).toBe(false);

    release();
    for (const survey of await Promise.all([first, second])) {
      expect(survey.items).toHaveLength(f.surveySize);
      expect(survey.items.every((entry) => entry.generation !== undefined)).toBe(true);
    }
  });
});
