/**
 * Web links for studies: signed, expiring, revocable.
 *
 * A rater link lets one rater take one survey of one batch study in a browser; an admin link
 * shows one study's progress and, once it is closed, its results. A link is
 * `v1.<payload>.<mac>`: the payload (base64url JSON) names the study, the rater, the survey,
 * the role, when it was issued and when it expires, and a random link id; the mac is
 * HMAC-SHA256 over the whole payload with the web secret, compared in constant time. Nothing in
 * a link says anything about arms.
 *
 * Revocations live in `<dataDir>/web/revocations.json` (written atomically, re-read when the
 * file changes, so a `study revoke` from the CLI takes effect in a running server at once): one
 * link by its id, or every link of a rater for a study issued up to the moment of revocation
 * (a fresh invite afterwards works again).
 */
import { createHmac, randomBytes as systemRandomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { UserError } from "../errors.js";
import { STUDY_ID } from "./record.js";

/** Rater and admin names: what follows `web:` in the vote store's rater field. */
export const RATER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The secret must carry at least this many bytes of entropy (as UTF-8 text). */
export const MIN_SECRET_BYTES = 32;
/** The longest a link may live. */
export const MAX_LINK_MS = 366 * 24 * 3600_000;

const MAC_CONTEXT = "imagine-bot web link v1\n";
const LINK_ID = /^[0-9a-f]{16}$/;

export type InviteRole = "rater" | "admin";

/** What a verified link grants. */
export interface Invite {
  /** Random, shown when the link is made; `study revoke --link ID` revokes just this link. */
  id: string;
  role: InviteRole;
  studyId: string;
  /** The name the rater votes under (as `web:<rater>`), or the admin's name. */
  rater: string;
  /** 1-based survey of the study's plan (rater links); 0 for admin links. */
  survey: number;
  issuedAt: Date;
  expiresAt: Date;
}

const payloadSchema = z
  .object({
    j: z.string().regex(LINK_ID),
    a: z.enum(["rater", "admin"]),
    s: z.string().regex(STUDY_ID),
    r: z.string().regex(RATER_NAME),
    n: z.number().int().min(0).max(1000),
    i: z.number().int().min(0),
    e: z.number().int().min(0),
  })
  .strict();

/** Why a link was refused. Every reason is answered with the same 403; logs keep the reason. */
export type InviteRejection = "malformed" | "signature" | "expired" | "revoked";

export class InviteRejected extends Error {
  readonly reason: InviteRejection;
  constructor(reason: InviteRejection) {
    super(`link refused: ${reason}`);
    this.name = "InviteRejected";
    this.reason = reason;
  }
}

/** Checks the web secret; the message names the variable it comes from. */
export function checkWebSecret(secret: string | undefined, variable: string): string {
  if (secret === undefined || secret.trim() === "") {
    throw new UserError(
      "USAGE",
      `${variable} is not set: set it to a random secret of at least ${MIN_SECRET_BYTES} bytes (for example: openssl rand -hex 32)`,
    );
  }
  if (Buffer.byteLength(secret, "utf8") < MIN_SECRET_BYTES) {
    throw new UserError(
      "USAGE",
      `${variable} is too short: it needs at least ${MIN_SECRET_BYTES} bytes (for example: openssl rand -hex 32)`,
    );
  }
  return secret;
}

/** "14d", "12h", "30m", "90s", "2w" → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d{1,6})([smhdw])$/.exec(text.trim());
  if (match === null) {
    throw new UserError(
      "USAGE",
      `"${text}" is not a duration: use a whole number and s, m, h, d or w (e.g. 14d)`,
    );
  }
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[
    match[2] as "s" | "m" | "h" | "d" | "w"
  ];
  const ms = Number(match[1]) * unit;
  if (ms <= 0 || ms > MAX_LINK_MS) {
    throw new UserError("USAGE", `a link lives from 1 second to 366 days, not ${text}`);
  }
  return ms;
}

export interface CreateInvite {
  secret: string;
  role: InviteRole;
  studyId: string;
  rater: string;
  /** Rater links: the 1-based survey; admin links: 0. */
  survey: number;
  /** How long the link lives (milliseconds). */
  lifetimeMs: number;
  now?: Date;
  randomBytes?: (size: number) => Buffer;
}

/** Makes a signed link token (the path segment after /s/ or /admin/). */
export function createInvite(options: CreateInvite): { token: string; invite: Invite } {
  if (!STUDY_ID.test(options.studyId)) {
    throw new UserError("USAGE", `"${options.studyId}" is not a study id`);
  }
  if (!RATER_NAME.test(options.rater)) {
    throw new UserError(
      "USAGE",
      `"${options.rater}" is not a rater name: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  const survey = options.survey;
  if (options.role === "rater" ? !Number.isInteger(survey) || survey < 1 : survey !== 0) {
    throw new UserError("USAGE", "a rater link needs a survey number ≥ 1; an admin link has none");
  }
  if (!(options.lifetimeMs > 0 && options.lifetimeMs <= MAX_LINK_MS)) {
    throw new UserError("USAGE", "a link lives from 1 second to 366 days");
  }
  const now = options.now ?? new Date();
  const id = (options.randomBytes ?? systemRandomBytes)(8).toString("hex");
  const issuedAt = Math.floor(now.getTime() / 1000);
  const payload = {
    j: id,
    a: options.role,
    s: options.studyId,
    r: options.rater,
    n: survey,
    i: issuedAt,
    e: Math.floor((now.getTime() + options.lifetimeMs) / 1000),
  };
  const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return {
    token: `v1.${body}.${mac(options.secret, body).toString("base64url")}`,
    invite: toInvite(payload),
  };
}

/**
 * The link's grant, or InviteRejected: malformed, a signature that does not match (any change
 * to the payload), expired, or revoked.
 */
export async function verifyInvite(
  secret: string,
  token: string,
  options: { now?: Date; revocations?: RevocationList } = {},
): Promise<Invite> {
  const invite = verifySignature(secret, token, options.now ?? new Date());
  if (options.revocations !== undefined && (await options.revocations.isRevoked(invite))) {
    throw new InviteRejected("revoked");
  }
  return invite;
}

function verifySignature(secret: string, token: string, now: Date): Invite {
  if (typeof token !== "string" || token.length > 1024) throw new InviteRejected("malformed");
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "v1") throw new InviteRejected("malformed");
  const [, body, signature] = parts as [string, string, string];
  if (!/^[A-Za-z0-9_-]+$/.test(body) || !/^[A-Za-z0-9_-]{43}$/.test(signature)) {
    throw new InviteRejected("malformed");
  }
  const given = Buffer.from(signature, "base64url");
  const expected = mac(secret, body);
  // Both are 32 bytes (the pattern above fixes the length); the comparison takes the same time
  // wherever they differ.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new InviteRejected("signature");
  }
  let parsed: z.infer<typeof payloadSchema>;
  try {
    parsed = payloadSchema.parse(JSON.parse(Buffer.from(body, "base64url").toString("utf8")));
  } catch {
    throw new InviteRejected("malformed");
  }
  if ((parsed.a === "rater") !== parsed.n >= 1) throw new InviteRejected("malformed");
  if (now.getTime() >= parsed.e * 1000) throw new InviteRejected("expired");
  return toInvite(parsed);
}

function mac(secret: string, body: string): Buffer {
  return createHmac("sha256", secret).update(MAC_CONTEXT).update(body).digest();
}

function toInvite(p: z.infer<typeof payloadSchema>): Invite {
  return {
    id: p.j,
    role: p.a,
    studyId: p.s,
    rater: p.r,
    survey: p.n,
    issuedAt: new Date(p.i * 1000),
    expiresAt: new Date(p.e * 1000),
  };
}

const revocationSchema = z.union([
  z.object({ link: z.string().regex(LINK_ID), at: z.string() }).strict(),
  z
    .object({
      studyId: z.string().regex(STUDY_ID),
      rater: z.string().regex(RATER_NAME),
      at: z.string(),
    })
    .strict(),
]);
const revocationFileSchema = z
  .object({ version: z.literal(1), revoked: z.array(revocationSchema) })
  .strict();

export type Revocation = z.infer<typeof revocationSchema>;

/** The durable revocation list, `<dataDir>/web/revocations.json`. */
export class RevocationList {
  readonly file: string;
  private cache: { mtimeMs: number; size: number; revoked: Revocation[] } | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private checkedAt = Number.NEGATIVE_INFINITY;

  /** `recheckMs`: how stale another process's revocations may be (default 1 s; 0: never). */
  constructor(
    dataDir: string,
    private readonly recheckMs = 1_000,
  ) {
    this.file = join(dataDir, "web", "revocations.json");
  }

  /** Revokes one link by id, or every link of a rater for a study issued until now. */
  async revoke(
    target: { link: string } | { studyId: string; rater: string },
    now = new Date(),
  ): Promise<Revocation> {
    const entry = revocationSchema.safeParse({ ...target, at: now.toISOString() });
    if (!entry.success) {
      throw new UserError(
        "USAGE",
        "link" in target
          ? `"${target.link}" is not a link id (16 hex digits, as printed by study invite)`
          : `not a study id and rater name: ${JSON.stringify(target)}`,
      );
    }
    const task = async () => {
      const revoked = [...(await this.load()), entry.data];
      await mkdir(join(this.file, ".."), { recursive: true });
      const temporary = `${this.file}.${systemRandomBytes(6).toString("hex")}.tmp`;
      try {
        await writeFile(temporary, `${JSON.stringify({ version: 1, revoked }, null, 2)}\n`, {
          mode: 0o600,
        });
        await rename(temporary, this.file);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
      this.cache = undefined;
      return entry.data;
    };
    const result = this.lock.then(task, task);
    this.lock = result.catch(() => {});
    return result;
  }

  async isRevoked(invite: Invite): Promise<boolean> {
    const issued = invite.issuedAt.getTime();
    return (await this.load()).some((entry) =>
      "link" in entry
        ? entry.link === invite.id
        : entry.studyId === invite.studyId &&
          entry.rater === invite.rater &&
          issued <= Date.parse(entry.at),
    );
  }

  /**
   * The entries, re-read whenever the file changed: revocations made through this list count at
   * once, those of another process (the CLI) within `recheckMs` (the file is looked at no more
   * often, so that a busy server does not stat it on every request).
   */
  async load(): Promise<Revocation[]> {
    const now = performance.now();
    if (this.cache !== undefined && now - this.checkedAt < this.recheckMs)
      return this.cache.revoked;
    let info: { mtimeMs: number; size: number };
    try {
      info = await stat(this.file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      this.cache = { mtimeMs: -1, size: -1, revoked: [] };
      this.checkedAt = now;
      return [];
    }
    this.checkedAt = now;
    const cached = this.cache;
    if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) {
      return cached.revoked;
    }
    const text = await readFile(this.file, "utf8");
    let parsed: z.infer<typeof revocationFileSchema>;
    try {
      parsed = revocationFileSchema.parse(JSON.parse(text));
    } catch (error) {
      // Refusing every link is safer than honouring revoked ones.
      throw new Error(`${this.file} is not a revocation list: ${(error as Error).message}`);
    }
    this.cache = { mtimeMs: info.mtimeMs, size: info.size, revoked: parsed.revoked };
    return parsed.revoked;
  }
}
