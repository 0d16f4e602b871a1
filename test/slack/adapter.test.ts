/**
 * The real Bolt app against the fake Slack Web API on 127.0.0.1: signed slash commands and
 * event callbacks over HTTP, and Socket Mode envelopes over a fake WebSocket server.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import { recoveredFailure } from "../../src/core/pipeline.js";
import type { VoteEvent } from "../../src/core/types.js";
import {
  FAKE_BOT_USER,
  reactionEvent,
  slackSignature,
  slashCommandPayload,
} from "../fakes/slack.js";
import {
  type Harness,
  nextCommand,
  reactionReport,
  SIGNING_SECRET,
  sendReaction,
  sendSlash,
  startHarness,
} from "./harness.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const CHANNEL = "C0GENERAL";
const EIGHT = [
  "one",
  "two",
  "three",
  "four",
  "red_circle",
  "large_orange_circle",
  "large_yellow_circle",
  "large_green_circle",
];

/** Runs one /imagine to the end; returns the image message's ts and its generation. */
async function imagineOnce(harness: Harness, text = "a lighthouse seed:7") {
  const done = nextCommand(harness.adapter);
  const response = await sendSlash(harness, text);
  expect(response.status).toBe(200);
  const report = await done;
  expect(report.outcome).toBe("done");
  const ref = report.messages[0]?.ref as string;
  const ts = ref.slice(ref.indexOf(":") + 1);
  const generation = await harness.votes.findGenerationByMessage("slack", ref);
  expect(generation).toBeDefined();
  return { response, report, ref, ts, generation: generation as NonNullable<typeof generation> };
}

async function allEvents(harness: Harness): Promise<VoteEvent[]> {
  const events: VoteEvent[] = [];
  for await (const event of harness.votes.events()) events.push(event);
  return events;
}

describe("Slack over HTTP", () => {
  it("acks /imagine at once, shows progress, uploads the PNG, posts it as a slack_file and adds the 8 reactions", async () => {
    h = await startHarness();
    const { response, ts, ref, generation } = await imagineOnce(h);
    expect(response.body).toBe("");
    expect(response.ms).toBeLessThan(3000);
    const fake = h.fake;
    const methods = fake.calls.map((c) => c.method);
    expect(methods.filter((m) => m === "auth.test")).toHaveLength(1);
    expect(methods[0]).toBe("auth.test");
    expect(fake.calls.every((c) => c.token === fake.botToken)).toBe(true);

    // Progress: one message, posted then updated.
    const [status] = fake.callsOf("chat.postMessage");
    expect(status?.params.channel).toBe(CHANNEL);
    expect(String(status?.params.text)).toMatch(/<@U0ALICE> asked for \*a lighthouse\*/);
    const progress = fake.callsOf("chat.update").map((c) => String(c.params.text));
    expect([String(status?.params.text), ...progress].join("\n")).toMatch(
      /Queued|Writing|Rendering/,
    );

    // Upload: URL, bytes to that URL, completion — the bytes are the saved PNG.
    const [getUrl] = fake.callsOf("files.getUploadURLExternal");
    const filename = String(getUrl?.params.filename);
    expect(filename).toMatch(/^imagine-[0-9a-f]{8}\.png$/);
    const saved = readFileSync(join(h.dataDir, generation.image.path));
    expect(Number(getUrl?.params.length)).toBe(saved.length);
    expect(fake.uploadPosts).toHaveLength(1);
    expect(fake.uploadPosts[0]?.bytes.equals(saved)).toBe(true);
    const [complete] = fake.callsOf("files.completeUploadExternal");
    const fileId = fake.uploadPosts[0]?.fileId;
    expect(complete?.params.files).toEqual([expect.objectContaining({ id: fileId })]);
    expect(complete?.params.channel_id).toBeUndefined();

    // The image message is the progress message, updated into blocks naming the file.
    expect(ts).toBe(status && fake.messages.get(`${CHANNEL}:${ts}`)?.ts);
    const final = fake.callsOf("chat.update").at(-1);
    expect(final?.params.ts).toBe(ts);
    const blocks = final?.params.blocks as { type: string; slack_file?: { id: string } }[];
    expect(blocks.find((b) => b.type === "image")?.slack_file).toEqual({ id: fileId });
    const shown = JSON.stringify(blocks);
    expect(shown).toContain("a lighthouse");
    expect(shown).toContain("*Prompt:*");
    expect(shown).not.toContain("hidden while the blind study");
    expect(shown).toContain("seed 7");
    expect(shown).toContain(":large_green_circle:");

    // Reactions: eight, in order, on that message; and the store knows the message.
    const added = fake.callsOf("reactions.add");
    expect(added.map((c) => c.params.name)).toEqual(EIGHT);
    expect(EIGHT).toEqual(votingReactions(h.config.votes.slackEmoji));
    expect(added.every((c) => c.params.timestamp === ts && c.params.channel === CHANNEL)).toBe(
      true,
    );
    expect(generation.messageRef).toBe(ref);
    expect(generation.platform).toBe("slack");
    expect(generation.requester).toBe("slack:U0ALICE");
    expect(generation.seed).toBe(7);

    // Order: progress → upload → image message → reactions.
    const at = (method: string, nth = 0) =>
      fake.calls.indexOf(fake.callsOf(method)[nth] as (typeof fake.calls)[number]);
    expect(at("chat.postMessage")).toBeLessThan(at("files.getUploadURLExternal"));
    expect(at("files.getUploadURLExternal")).toBeLessThan(at("files.completeUploadExternal"));
    expect(at("files.completeUploadExternal")).toBeLessThan(fake.calls.indexOf(final as never));
    expect(fake.calls.indexOf(final as never)).toBeLessThan(at("reactions.add"));

    // The arm never leaves the server.
    expect(JSON.stringify(fake.calls)).not.toContain(generation.arm);
  });

  it("counts reactions as votes: replace, retract only the current score, ignore the rest, drop retries", async () => {
    h = await startHarness();
    const { ts, generation } = await imagineOnce(h);
    const votesNow = async () =>
      Object.fromEntries(
        (await h?.votes.votesOf(generation.id))?.map((v) => [
          `${v.rater}/${v.dimension}`,
          v.score,
        ]) ?? [],
      );

    const first = await sendReaction(h, { eventId: "Ev1", reaction: "three", ts });
    expect(first.status).toBe(200);
    expect(first.report.outcome.kind).toBe("cast");
    expect(await votesNow()).toEqual({ "slack:U0ALICE/quality": 3 });

    // Slack's retry of the same event (x-slack-retry-num) is acknowledged and not counted again.
    const retry = await sendReaction(h, { eventId: "Ev1", reaction: "three", ts, retryNum: 1 });
    expect(retry.status).toBe(200);
    expect(retry.report.outcome).toEqual({ kind: "ignored", reason: "duplicate" });

    // A second reaction in the same dimension replaces the vote (the old reaction stays).
    const replace = await sendReaction(h, { eventId: "Ev2", reaction: "four", ts });
    expect(replace.report.outcome.kind).toBe("cast");
    expect(await votesNow()).toEqual({ "slack:U0ALICE/quality": 4 });

    // Removing the old reaction changes nothing; removing the current one retracts it.
    const removeOld = await sendReaction(h, {
      kind: "reaction_removed",
      eventId: "Ev3",
      reaction: "three",
      ts,
    });
    expect(removeOld.report.outcome.kind).toBe("unchanged");
    expect(await votesNow()).toEqual({ "slack:U0ALICE/quality": 4 });
    await sendReaction(h, { eventId: "Ev4", reaction: "large_green_circle", ts });
    const removeCurrent = await sendReaction(h, {
      kind: "reaction_removed",
      eventId: "Ev5",
      reaction: "four",
      ts,
    });
    expect(removeCurrent.report.outcome.kind).toBe("retracted");
    expect(await votesNow()).toEqual({ "slack:U0ALICE/faithfulness": 4 });

    // Skin tones count as the base reaction; another person votes on their own.
    await sendReaction(h, { eventId: "Ev6", user: "U0BOB", reaction: "two::skin-tone-3", ts });
    expect(await votesNow()).toEqual({ "slack:U0ALICE/faithfulness": 4, "slack:U0BOB/quality": 2 });

    // Ignored: the bot's own reactions, other emoji, other messages, non-message items.
    const own = await sendReaction(h, { eventId: "Ev7", user: FAKE_BOT_USER, reaction: "one", ts });
    expect(own.report.outcome).toEqual({ kind: "ignored", reason: "self" });
    const tada = await sendReaction(h, { eventId: "Ev8", reaction: "tada", ts });
    expect(tada.report.outcome).toEqual({ kind: "ignored", reason: "not-a-vote" });
    const other = await sendReaction(h, {
      eventId: "Ev9",
      reaction: "one",
      ts: "1600000000.000001",
    });
    expect(other.report.outcome).toEqual({ kind: "ignored", reason: "not-a-generation" });
    const file = await sendReaction(h, { eventId: "Ev10", reaction: "one", ts, itemType: "file" });
    expect(file.report.outcome).toEqual({ kind: "ignored", reason: "not-a-message" });

    expect(await votesNow()).toEqual({ "slack:U0ALICE/faithfulness": 4, "slack:U0BOB/quality": 2 });
    expect(
      (await allEvents(h)).map((e) => `${e.rater}:${e.kind}:${e.dimension}:${e.score}`),
    ).toEqual([
      "slack:U0ALICE:add:quality:3",
      "slack:U0ALICE:replace:quality:4",
      "slack:U0ALICE:add:faithfulness:4",
      "slack:U0ALICE:retract:quality:4",
      "slack:U0BOB:add:quality:2",
    ]);
  });

  it("rejects a wrong signature and a stale timestamp with 401 and changes nothing", async () => {
    h = await startHarness();
    const { ts, generation } = await imagineOnce(h);
    const callsBefore = h.fake.calls.length;
    const commands: unknown[] = [];
    h.adapter.events.on("command", (r) => commands.push(r));
    h.adapter.events.on("reaction", (r) => commands.push(r));

    const forged = await sendSlash(
      h,
      "a forged lighthouse",
      {},
      { signature: `v0=${"0".repeat(64)}` },
    );
    expect(forged.status).toBe(401);
    const otherSecret = await sendSlash(h, "a lighthouse", {}, {});
    expect(otherSecret.status).toBe(200); // control: the same request, signed right, is accepted
    await nextCommand(h.adapter);
    const afterControl = h.fake.calls.length;

    const stale = Math.floor(Date.now() / 1000) - 6 * 60;
    const staleSlash = await sendSlash(h, "an old lighthouse", {}, { timestamp: stale });
    expect(staleSlash.status).toBe(401);

    const body = JSON.stringify(
      reactionEvent({
        kind: "reaction_added",
        eventId: "EvBad",
        user: "U0EVE",
        reaction: "one",
        channel: CHANNEL,
        ts,
      }),
    );
    const now = Math.floor(Date.now() / 1000);
    const { postSigned } = await import("../fakes/slack.js");
    const badReaction = await postSigned(h.url, body, {
      secret: "not-the-secret",
      contentType: "application/json",
    });
    expect(badReaction.status).toBe(401);
    const staleReaction = await postSigned(h.url, body, {
      secret: SIGNING_SECRET,
      contentType: "application/json",
      timestamp: stale,
      signature: slackSignature(SIGNING_SECRET, stale, body),
    });
    expect(staleReaction.status).toBe(401);
    expect(now).toBeGreaterThan(stale);

    // The receiver answered 401 before dispatching, so nothing can follow these requests.
    expect(h.fake.calls.length).toBe(afterControl);
    expect(callsBefore).toBeLessThan(afterControl);
    expect(commands).toHaveLength(1); // the control command only
    expect(await h.votes.votesOf(generation.id)).toEqual([]);
    expect(JSON.stringify(h.fake.calls)).not.toMatch(/forged|an old lighthouse/);
  });

  it("posts a recovered job's failure as a channel message", async () => {
    h = await startHarness();
    const error = recoveredFailure(new Error("HTTP 500 from the render server"), "0a1b2c3d");
    const posted = await h.adapter.postFailure("C0GENERAL1", error);
    const [post] = h.fake.callsOf("chat.postMessage");
    expect(post?.params).toMatchObject({
      channel: "C0GENERAL1",
      text: ":warning: Sorry, that failed: Something went wrong while making the image. (reference 0a1b2c3d)",
    });
    expect(posted?.ref).toMatch(/^C0GENERAL1:\d+\.\d+$/);
  });

  it("retries the image message while Slack is still processing the upload", async () => {
    h = await startHarness();
    h.fake.fileNotReady = 2;
    const { ts } = await imagineOnce(h);
    const withBlocks = h.fake.callsOf("chat.update").filter((c) => c.params.blocks !== undefined);
    expect(withBlocks).toHaveLength(3);
    expect(h.fake.callsOf("files.getUploadURLExternal")).toHaveLength(1);
    expect(h.fake.callsOf("reactions.add").every((c) => c.params.timestamp === ts)).toBe(true);
    expect(h.fake.callsOf("reactions.add")).toHaveLength(8);
  });

  it("says so publicly when the image was made but Slack would not take it, with a reference", async () => {
    h = await startHarness();
    h.fake.failNext("files.getUploadURLExternal", "internal_error");
    const done = nextCommand(h.adapter);
    await sendSlash(h, "a lighthouse");
    const report = await done;
    expect(report).toMatchObject({ outcome: "failed", messages: [] });
    const reference = report.reference as string;
    expect(reference).toMatch(/^[0-9a-f]{8}$/);
    const shown = [...h.fake.messages.values()].map((m) => m.text ?? "").join("\n");
    expect(shown).toContain(
      `The image for "a lighthouse" was made but could not be posted here (reference ${reference}).`,
    );
    expect(h.logs.some((line) => line.reference === reference && line.level === 50)).toBe(true);
    expect(h.fake.callsOf("reactions.add")).toEqual([]);
  });

  it("refuses an explicit subject privately, with the reason, posting nothing", async () => {
    h = await startHarness();
    const done = nextCommand(h.adapter);
    const response = await sendSlash(h, "porn");
    expect(response.status).toBe(200);
    expect((await done).outcome).toBe("refused");
    expect(h.fake.callsOf("chat.postMessage")).toEqual([]);
    expect(h.fake.callsOf("files.getUploadURLExternal")).toEqual([]);
    expect(h.fake.responses).toHaveLength(1);
    const reply = h.fake.responses[0]?.body as { response_type: string; text: string };
    expect(reply.response_type).toBe("ephemeral");
    expect(reply.text).toMatch(/explicit-content filter/);
    expect(h.backend.calls).toEqual([]);
  });

  it("says a backend failure failed, with the reference the pipeline logged", async () => {
    h = await startHarness();
    h.backend.fail = true;
    const done = nextCommand(h.adapter);
    await sendSlash(h, "a lighthouse");
    expect((await done).outcome).toBe("failed");
    const logged = h.logs.find((line) => line.msg === "imagine failed");
    const reference = String(logged?.reference);
    expect(reference).toMatch(/^[0-9a-f]{8}$/);
    const [status] = h.fake.callsOf("chat.postMessage");
    const message =
      h.fake.messages.get(`${CHANNEL}:${String(status?.params.ts ?? "")}`) ??
      [...h.fake.messages.values()][0];
    expect(message?.text).toContain(`reference ${reference}`);
    expect(message?.text).toMatch(/failed/);
    expect(h.fake.callsOf("reactions.add")).toEqual([]);
    expect(h.fake.callsOf("files.getUploadURLExternal")).toEqual([]);
  });

  it("answers help and usage in the ack, and runs other commands as subcommands", async () => {
    h = await startHarness();
    const help = await sendSlash(h, "help");
    expect(help.status).toBe(200);
    const helpBody = JSON.parse(help.body) as { response_type: string; text: string };
    expect(helpBody.response_type).toBe("ephemeral");
    expect(helpBody.text).toContain("/imagine prompt <subject>");
    expect(helpBody.text).toContain("seed");
    expect(helpBody.text).not.toContain("model_dir");

    const usage = JSON.parse((await sendSlash(h, "a lighthouse seed:many")).body) as {
      text: string;
    };
    expect(usage.text).toMatch(/seed must be a number/);
    const empty = JSON.parse((await sendSlash(h, "prompt")).body) as { text: string };
    expect(empty.text).toMatch(/Say what to draw/);

    const done = nextCommand(h.adapter);
    await sendSlash(h, "prompt a lighthouse seed:3 count:2");
    const report = await done;
    expect(report).toMatchObject({ command: "prompt", outcome: "done" });
    // Posted in the channel, like Discord's reply.
    const reply = h.fake.callsOf("chat.postMessage").at(-1)?.params as { text: string };
    expect(reply.text).toMatch(/Prompts for "a lighthouse" \(seed 3\)/);
    expect(reply.text).toMatch(/\n1\. .*\n2\. /s);
    expect(h.backend.calls).toEqual([]);
  });
});

describe("Slack admin commands", () => {
  it("runs them for workspace admins only", async () => {
    h = await startHarness();
    const refused = nextCommand(h.adapter);
    await sendSlash(h, "stats");
    expect((await refused).outcome).toBe("refused");
    const reply = h.fake.responses.at(-1)?.body as { response_type: string; text: string };
    expect(reply).toMatchObject({ response_type: "ephemeral" });
    expect(reply.text).toMatch(/Only workspace admins and owners can use \/imagine stats/);

    h.fake.admins.add("U0ALICE"); // the harness's default user
    const done = nextCommand(h.adapter);
    await sendSlash(h, "stats");
    expect((await done).outcome).toBe("done");
  });
});

describe("Slack over Socket Mode", () => {
  it("connects through apps.connections.open, acks envelopes, posts images and counts votes", async () => {
    h = await startHarness({ socket: true });
    const fake = h.fake;
    expect(fake.callsOf("apps.connections.open")).toHaveLength(1);
    expect(fake.callsOf("apps.connections.open")[0]?.token).toBe(fake.appToken);

    const done = nextCommand(h.adapter);
    const ack = await fake.sendEnvelope(
      "slash_commands",
      slashCommandPayload({
        text: "a lighthouse seed:5",
        user: "U0ALICE",
        channel: CHANNEL,
        responseUrl: fake.responseUrl(),
      }),
    );
    expect(ack.envelope_id).toEqual(expect.any(String));
    const report = await done;
    expect(report.outcome).toBe("done");
    expect(fake.callsOf("reactions.add").map((c) => c.params.name)).toEqual(EIGHT);
    const ref = report.messages[0]?.ref as string;
    const ts = ref.slice(ref.indexOf(":") + 1);
    const generation = await h.votes.findGenerationByMessage("slack", ref);
    expect(generation?.seed).toBe(5);

    const handled = reactionReport(h.adapter, "EvSock1");
    const eventAck = await fake.sendEnvelope(
      "events_api",
      reactionEvent({
        kind: "reaction_added",
        eventId: "EvSock1",
        user: "U0ALICE",
        reaction: "large_yellow_circle",
        channel: CHANNEL,
        ts,
      }),
    );
    expect(eventAck.envelope_id).toEqual(expect.any(String));
    expect((await handled).outcome.kind).toBe("cast");
    const votes = await h.votes.votesOf(generation?.id as string);
    expect(votes.map((v) => [v.rater, v.dimension, v.score])).toEqual([
      ["slack:U0ALICE", "faithfulness", 3],
    ]);

    // Help is answered in the envelope's ack payload.
    const helpAck = await fake.sendEnvelope(
      "slash_commands",
      slashCommandPayload({
        text: "help",
        user: "U0ALICE",
        channel: CHANNEL,
        responseUrl: fake.responseUrl(),
      }),
    );
    expect(helpAck.payload).toMatchObject({ response_type: "ephemeral" });
  });
});
