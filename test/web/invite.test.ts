import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  checkWebSecret,
  createInvite,
  InviteRejected,
  parseDuration,
  RevocationList,
  verifyInvite,
} from "../../src/core/study/invite.js";

const SECRET = "a-test-secret-that-is-long-enough-0123456789";
const NOW = new Date("2026-03-01T12:00:00Z");
const DAY = 86_400_000;

function counterBytes(): (size: number) => Buffer {
  let n = 0;
  return (size) => Buffer.alloc(size, ++n);
}

function rater(overrides: Partial<Parameters<typeof createInvite>[0]> = {}) {
  return createInvite({
    secret: SECRET,
    role: "rater",
    studyId: "paper-1a2b3c4d",
    rater: "alice",
    survey: 2,
    lifetimeMs: 14 * DAY,
    now: NOW,
    randomBytes: counterBytes(),
    ...overrides,
  });
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof InviteRejected) return error.reason;
    throw error;
  }
  return "accepted";
}

describe("invite links", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "invite-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips study, rater, survey, role and expiry", async () => {
    const { token, invite } = rater();
    expect(invite).toEqual({
      id: "0101010101010101",
      role: "rater",
      studyId: "paper-1a2b3c4d",
      rater: "alice",
      survey: 2,
      issuedAt: NOW,
      expiresAt: new Date(NOW.getTime() + 14 * DAY),
    });
    expect(await verifyInvite(SECRET, token, { now: NOW })).toEqual(invite);
    expect(token).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  });

  it("refuses a link whose payload or signature was changed, or signed with another secret", async () => {
    const { token } = rater();
    const [v, body, mac] = token.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(body, "base64url").toString());
    for (const change of [
      { n: 1 },
      { r: "mallory" },
      { s: "other-1a2b3c4d" },
      { e: payload.e + 1 },
    ]) {
      const forged = Buffer.from(JSON.stringify({ ...payload, ...change })).toString("base64url");
      expect(await reason(verifyInvite(SECRET, `${v}.${forged}.${mac}`, { now: NOW }))).toBe(
        "signature",
      );
    }
    const flipped = `${mac.slice(0, 10)}${mac[10] === "A" ? "B" : "A"}${mac.slice(11)}`;
    expect(await reason(verifyInvite(SECRET, `${v}.${body}.${flipped}`, { now: NOW }))).toBe(
      "signature",
    );
    expect(await reason(verifyInvite(`${SECRET}x`, token, { now: NOW }))).toBe("signature");
    for (const bad of [
      "",
      "v1",
      "v2.a.b",
      `${token}.x`,
      "v1..",
      `v1.${body}.short`,
      "x".repeat(2000),
    ]) {
      expect(await reason(verifyInvite(SECRET, bad, { now: NOW }))).toBe("malformed");
    }
  });

  it("expires at the expiry instant", async () => {
    const { token } = rater({ lifetimeMs: 60_000 });
    expect(
      await reason(verifyInvite(SECRET, token, { now: new Date(NOW.getTime() + 59_999) })),
    ).toBe("accepted");
    expect(
      await reason(verifyInvite(SECRET, token, { now: new Date(NOW.getTime() + 60_000) })),
    ).toBe("expired");
  });

  it("revokes one link by id, or a rater's links up to the revocation, durably", async () => {
    const revocations = new RevocationList(dir);
    const first = rater({ randomBytes: () => Buffer.alloc(8, 1) });
    const second = rater({ randomBytes: () => Buffer.alloc(8, 2) });
    const bob = rater({ rater: "bob", randomBytes: () => Buffer.alloc(8, 3) });
    await revocations.revoke({ link: first.invite.id }, NOW);
    const now = { now: NOW, revocations };
    expect(await reason(verifyInvite(SECRET, first.token, now))).toBe("revoked");
    expect(await reason(verifyInvite(SECRET, second.token, now))).toBe("accepted");

    await revocations.revoke({ studyId: "paper-1a2b3c4d", rater: "alice" }, NOW);
    // Another process (a fresh list over the same file) sees both revocations.
    const reread = { now: NOW, revocations: new RevocationList(dir) };
    expect(await reason(verifyInvite(SECRET, second.token, reread))).toBe("revoked");
    expect(await reason(verifyInvite(SECRET, bob.token, reread))).toBe("accepted");
    // A link issued after the revocation works again.
    const later = rater({
      now: new Date(NOW.getTime() + 1000),
      randomBytes: () => Buffer.alloc(8, 4),
    });
    expect(await reason(verifyInvite(SECRET, later.token, reread))).toBe("accepted");
    expect(JSON.parse(await readFile(revocations.file, "utf8")).revoked).toHaveLength(2);
  });

  it("sees another process's revocation once its recheck interval has passed", async () => {
    const server = new RevocationList(dir, 0);
    const { token, invite } = rater();
    expect(await reason(verifyInvite(SECRET, token, { now: NOW, revocations: server }))).toBe(
      "accepted",
    );
    await new RevocationList(dir).revoke({ link: invite.id }, NOW);
    expect(await reason(verifyInvite(SECRET, token, { now: NOW, revocations: server }))).toBe(
      "revoked",
    );
  });

  it("refuses every link when the revocation file is corrupt, rather than ignoring it", async () => {
    const revocations = new RevocationList(dir);
    await revocations.revoke({ link: "00000000000000ff" }, NOW);
    await writeFile(revocations.file, "{ not json");
    await expect(verifyInvite(SECRET, rater().token, { now: NOW, revocations })).rejects.toThrow(
      /not a revocation list/,
    );
    await expect(revocations.revoke({ link: "nope" })).rejects.toThrow(/not a link id/);
  });

  it("checks names, surveys, durations and the secret with clear errors", () => {
    expect(() => rater({ rater: "no spaces" })).toThrow(/not a rater name/);
    expect(() => rater({ survey: 0 })).toThrow(/survey number/);
    expect(() => rater({ role: "admin" })).toThrow(/admin link has none/);
    expect(() => rater({ studyId: "../etc" })).toThrow(/not a study id/);
    expect(parseDuration("14d")).toBe(14 * DAY);
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("2w")).toBe(14 * DAY);
    expect(() => parseDuration("14 days")).toThrow(/not a duration/);
    expect(() => parseDuration("400d")).toThrow(/366 days/);
    expect(() => checkWebSecret(undefined, "IMAGINE_WEB_SECRET")).toThrow(
      /IMAGINE_WEB_SECRET is not set/,
    );
    expect(() => checkWebSecret("short", "IMAGINE_WEB_SECRET")).toThrow(
      /IMAGINE_WEB_SECRET is too short/,
    );
    expect(checkWebSecret(SECRET, "IMAGINE_WEB_SECRET")).toBe(SECRET);
  });
});
