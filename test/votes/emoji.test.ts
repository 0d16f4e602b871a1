import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/core/config.js";
import { reactionToVote, votingReactions } from "../../src/core/votes/index.js";

const { votes } = loadConfig({}).config;

describe("votingReactions", () => {
  it("lists quality 1–4 then faithfulness 1–4", () => {
    expect(votingReactions("discord", votes)).toEqual(["1️⃣", "2️⃣", "3️⃣", "4️⃣", "🔴", "🟠", "🟡", "🟢"]);
    expect(votingReactions("slack", votes)).toEqual([
      "one",
      "two",
      "three",
      "four",
      "red_circle",
      "large_orange_circle",
      "large_yellow_circle",
      "large_green_circle",
    ]);
  });

  it("maps every listed reaction back to its dimension and score", () => {
    for (const platform of ["discord", "slack"] as const) {
      const reactions = votingReactions(platform, votes);
      reactions.forEach((emoji, i) => {
        expect(reactionToVote(platform, emoji, votes)).toEqual({
          dimension: i < 4 ? "quality" : "faithfulness",
          score: (i % 4) + 1,
        });
      });
    }
  });
});

describe("reactionToVote on Discord", () => {
  it("ignores variation selectors on keycaps", () => {
    expect(reactionToVote("discord", "3\u20E3", votes)).toEqual({ dimension: "quality", score: 3 });
    expect(reactionToVote("discord", "3\uFE0F\u20E3", votes)).toEqual({
      dimension: "quality",
      score: 3,
    });
    expect(reactionToVote("discord", "🟢\uFE0F", votes)).toEqual({
      dimension: "faithfulness",
      score: 4,
    });
  });

  it("matches custom emoji by id when configured with one, else by name", () => {
    const custom = {
      ...votes,
      discordEmoji: {
        quality: ["q1:111", "q2:222", "<:q3:333>", "q4"],
        faithfulness: ["f1", "f2", "f3", "f4:444"],
      },
    };
    expect(reactionToVote("discord", "q1:111", custom)).toEqual({ dimension: "quality", score: 1 });
    expect(reactionToVote("discord", "renamed:222", custom)).toEqual({
      dimension: "quality",
      score: 2,
    });
    expect(reactionToVote("discord", "q1:999", custom)).toBeUndefined();
    expect(reactionToVote("discord", "q3:333", custom)).toEqual({ dimension: "quality", score: 3 });
    expect(reactionToVote("discord", "q4:555", custom)).toEqual({ dimension: "quality", score: 4 });
    expect(reactionToVote("discord", "<a:f2:777>", custom)).toEqual({
      dimension: "faithfulness",
      score: 2,
    });
    expect(reactionToVote("discord", "f3", custom)).toEqual({
      dimension: "faithfulness",
      score: 3,
    });
  });

  it("returns undefined for other reactions", () => {
    for (const emoji of ["👍", "", " ", "5️⃣", "one", "1"]) {
      expect(reactionToVote("discord", emoji, votes)).toBeUndefined();
    }
  });
});

describe("reactionToVote on Slack", () => {
  it("takes names with or without colons and drops skin tones", () => {
    expect(reactionToVote("slack", "two", votes)).toEqual({ dimension: "quality", score: 2 });
    expect(reactionToVote("slack", ":two:", votes)).toEqual({ dimension: "quality", score: 2 });
    expect(reactionToVote("slack", "large_green_circle::skin-tone-2", votes)).toEqual({
      dimension: "faithfulness",
      score: 4,
    });
  });

  it("returns undefined for other reactions", () => {
    for (const emoji of ["thumbsup", "", "2️⃣", "five", "one_two"]) {
      expect(reactionToVote("slack", emoji, votes)).toBeUndefined();
    }
  });
});
