/**
 * Resuming an interaction in another process (a chat process restarted mid-job on the shared
 * queue): allowed within Discord's 15-minute window, refused after it and for a handle that is
 * not an interaction's. The edit itself runs end to end in test/queue/scale.test.ts.
 */
import type { Client } from "discord.js";
import { describe, expect, it } from "vitest";
import {
  INTERACTION_WINDOW_MS,
  interactionHandle,
  resumeInteraction,
} from "../../src/adapters/discord/resume.js";
import { testConfig } from "../helpers/config.js";

const scale = testConfig().votes.discordEmoji;
const client = {} as Client<true>;
const receivedAt = Date.UTC(2026, 0, 1, 12, 0, 0);
const handle = interactionHandle({ applicationId: "1200", token: "itoken-1", receivedAt });

describe("resumeInteraction", () => {
  it("resumes within the window and not after it", () => {
    expect(resumeInteraction(client, handle, scale, receivedAt + 60_000)).toBeDefined();
    expect(
      resumeInteraction(client, handle, scale, receivedAt + INTERACTION_WINDOW_MS - 1),
    ).toBeDefined();
    expect(
      resumeInteraction(client, handle, scale, receivedAt + INTERACTION_WINDOW_MS),
    ).toBeUndefined();
    expect(INTERACTION_WINDOW_MS).toBeLessThan(15 * 60_000);
  });

  it("refuses a handle that is not an interaction's", () => {
    expect(resumeInteraction(client, "C0GENERAL:1700000000.000100", scale)).toBeUndefined();
    expect(resumeInteraction(client, JSON.stringify({ token: "t" }), scale)).toBeUndefined();
  });
});
