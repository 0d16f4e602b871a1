/**
 * The chat-adapter contract: the same scenarios, in what a person sees, against the Discord
 * adapter (real discord.js client, fake Discord) and the Slack adapter (real Bolt, fake Slack).
 * Both run through the one chat flow, so every guarantee is checked on both platforms.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PostedMessage } from "../../src/adapters/chat/platform.js";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import { slackName } from "../../src/core/votes/index.js";
import { type ChatDriver, discordDriver, slackDriver, WEB_URL } from "./drivers.js";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe.each([
  ["discord", discordDriver],
  ["slack", slackDriver],
] as const)("chat contract: %s", (platform, start) => {
  let chat: ChatDriver;
  let image: PostedMessage;

  beforeAll(async () => {
    chat = await start();
  });
  afterAll(async () => {
    await chat?.close();
  });

  function loggedUnder(reference: string): Record<string, unknown>[] {
    return chat.logs
      .flatMap((chunk) => chunk.split("\n"))
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.reference === reference);
  }

  it("slash command → the image, remembered, with the voting reactions", async () => {
    const seen = await chat.command("imagine", { subject: "a lighthouse", seed: 7 });
    expect(seen.report.outcome).toBe("done");
    expect(seen.report.messages).toHaveLength(1);
    image = seen.report.messages[0] as PostedMessage;

    const generation = await chat.votes.findGenerationByMessage(platform, image.ref);
    if (!generation) throw new Error("the image message was not remembered");
    expect(generation.requester).toBe(`${platform}:${chat.alice}`);
    expect(generation.seed).toBe(7);

    const scale =
      platform === "discord" ? chat.config.votes.discordEmoji : chat.config.votes.slackEmoji;
    const expected = votingReactions(scale).map((emoji) =>
      platform === "slack" ? slackName(emoji) : emoji,
    );
    expect(chat.botReactions(image)).toEqual(expected);

    const shown = seen.public.join("\n");
    expect(shown).toContain("a lighthouse");
    expect(shown).toMatch(/seed:? 7/i);
    expect(shown).toMatch(/quality/);
    expect(shown).not.toContain(generation.arm);
    expect(seen.private).toEqual([]);
  });

  it("reactions cast, replace and retract a vote; export shows <platform>:<id> raters", async () => {
    const { alice, bob } = chat;
    const cast = await chat.react(image, alice, { dimension: "quality", score: 3 }, true);
    expect(cast.outcome).toMatchObject({ kind: "cast", event: { kind: "add", score: 3 } });

    const replaced = await chat.react(image, alice, { dimension: "quality", score: 4 }, true);
    expect(replaced.outcome).toMatchObject({
      kind: "cast",
      event: { kind: "replace", score: 4, previous: 3 },
    });
    // Discord lets the bot remove the old reaction; Slack does not (it stays, not counted).
    expect(replaced.oldReactionRemoved).toBe(platform === "discord");

    // Removing the old score's reaction changes nothing; removing the current one retracts.
    const stale = await chat.react(image, alice, { dimension: "quality", score: 3 }, false);
    expect(stale.outcome).toMatchObject({ kind: "unchanged" });
    const retracted = await chat.react(image, alice, { dimension: "quality", score: 4 }, false);
    expect(retracted.outcome).toMatchObject({ kind: "retracted", event: { score: 4 } });

    await chat.react(image, bob, { dimension: "faithfulness", score: 2 }, true);
    const generation = await chat.votes.findGenerationByMessage(platform, image.ref);
    expect(await chat.votes.votesOf(generation?.id ?? "")).toEqual([
      expect.objectContaining({ rater: `${platform}:${bob}`, dimension: "faithfulness", score: 2 }),
    ]);

    const exported = await chat.command("export", {}, { admin: true });
    expect(exported.report.outcome).toBe("done");
    const csv = exported.files.find((file) => file.name === "votes.csv");
    if (!csv) throw new Error("no votes.csv posted");
    const rows = csv.data.toString("utf8").trim().split("\n");
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain(`,${platform}:${bob},faithfulness,2,`);
  });

  it("refuses a requester's mistake privately, with the reason, making nothing", async () => {
    const calls = chat.backend.calls.length;
    const seen = await chat.command("imagine", { subject: "porn" });
    expect(seen.report.outcome).toBe("refused");
    expect(seen.private.join("\n")).toMatch(/explicit-content filter/);
    expect(seen.public).toEqual([]);
    expect(chat.backend.calls.length).toBe(calls);
  });

  it("says publicly that a job failed, with the job's own reference, logged in full", async () => {
    chat.backend.fail = true;
    try {
      const first = await chat.command("imagine", { subject: "a harbour" });
      const second = await chat.command("imagine", { subject: "a harbour" });
      for (const seen of [first, second]) {
        expect(seen.report.outcome).toBe("failed");
        const reference = seen.report.reference as string;
        expect(reference).toMatch(/^[0-9a-f]{8}$/);
        expect(seen.public.join("\n")).toContain(`reference ${reference}`);
        expect(seen.public.join("\n")).not.toContain("exploded");
        expect(JSON.stringify(loggedUnder(reference))).toContain("the image server exploded");
      }
      expect(first.report.reference).not.toBe(second.report.reference);
    } finally {
      chat.backend.fail = false;
    }
  });

  it("shows an operator problem (a broken model directory) only as failed, reference X", async () => {
    const seen = await chat.command("imagine", { subject: "a fox", arm: "broken" });
    expect(seen.report.outcome).toBe("failed");
    const reference = seen.report.reference as string;
    const shown = [...seen.public, ...seen.private].join("\n");
    expect(shown).toContain(`reference ${reference}`);
    expect(shown).not.toContain(chat.brokenModelDir);
    expect(shown).not.toMatch(/imagine-model\.json|MODEL_DIR/);
    const logged = loggedUnder(reference);
    expect(logged.some((line) => line.level === 50)).toBe(true);
    expect(JSON.stringify(logged)).toContain(chat.brokenModelDir);
  });

  it("refuses an admin-only command to others, privately", async () => {
    const seen = await chat.command("stats", {});
    expect(seen.report.outcome).toBe("refused");
    expect(seen.private.join("\n")).toMatch(/^(:no_entry: )?Only .+ can use .*stats\.$/);
    expect(seen.public).toEqual([]);
  });

  it("posts an admin's report as readable text with its files (the chart PNG)", async () => {
    const seen = await chat.command("stats", { chart: true }, { admin: true });
    expect(seen.report.outcome).toBe("done");
    const shown = seen.public.join("\n");
    expect(shown).toContain("Table 1: mean (SD)");
    expect(shown).toContain("votes on 1 images by 1 raters");
    expect(shown).not.toMatch(/"summaries"|\[\d+,\d+,\d+/);
    const chart = seen.files.find((file) => file.name === "means.png");
    if (!chart) throw new Error("no chart posted");
    expect(chart.data.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  });

  it("gives an admin a rater's web-survey link privately, never in the channel", async () => {
    const started = await chat.command(
      "study",
      {
        action: "start",
        // Single words: Slack's `/imagine study name:…` options end at a space.
        name: "webraters",
        mode: "batch",
        concepts: "lighthouse,teapot",
        prompts: 1,
        surveys: 2,
      },
      { admin: true },
    );
    expect(started.report.outcome).toBe("done");
    const studyId = /Started batch study webraters \(([^)]+)\)/.exec(
      started.public.join("\n"),
    )?.[1];
    if (studyId === undefined) throw new Error(`no study id in ${started.public.join("\n")}`);
    const seen = await chat.command(
      "study",
      { action: "invite", study: studyId, rater: "alice", survey: 2 },
      { admin: true },
    );
    expect(seen.report.outcome).toBe("done");
    expect(seen.public.join("\n")).not.toContain(WEB_URL);
    expect(seen.private.join("\n")).toMatch(new RegExp(`${WEB_URL}/s/v1\\.\\S+`));
    expect(seen.private.join("\n")).toContain("alice, survey 2");
    await chat.command("study", { action: "stop", study: studyId }, { admin: true });
  });

  it("refuses commands outside the channel allow-list", async () => {
    const calls = chat.backend.calls.length;
    const seen = await chat.command(
      "imagine",
      { subject: "a boat" },
      { channel: chat.otherChannel },
    );
    expect(seen.report.outcome).toBe("refused");
    expect(seen.private.join("\n")).toMatch(/doesn't work in this channel/);
    expect(seen.public).toEqual([]);
    expect(chat.backend.calls.length).toBe(calls);
  });

  it("refuses new commands once shutting down", async () => {
    chat.stopAccepting();
    const seen = await chat.command("imagine", { subject: "a boat" });
    expect(seen.report.outcome).toBe("refused");
    expect(seen.private.join("\n")).toMatch(/shutting down/);
    expect(seen.public).toEqual([]);
  });
});
