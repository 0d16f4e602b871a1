/**
 * What every response carries (a strict Content Security Policy: the page's own script and
 * stylesheet, allowed by hash, and this server's images; no other inline code, no frames), CSRF
 * tokens for the forms, and per-link rate limits.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { SURVEY_CSS, SURVEY_JS } from "./assets.js";

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${SURVEY_JS.cspSource}`,
  `style-src ${SURVEY_CSS.cspSource}`,
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Secure headers for every response; HSTS only when the public URL is https. */
export function securityHeaders(https: boolean): Record<string, string> {
  return {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    // Links carry their token in the path: never send it to another site as a Referer.
    // ("no-referrer" would also make browsers send `Origin: null` on our own form posts.)
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "X-Robots-Tag": "noindex, nofollow",
    ...(https ? { "Strict-Transport-Security": "max-age=31536000; includeSubDomains" } : {}),
  };
}

/** The form token of one link: HMAC of its id, so it needs no server-side session. */
export function csrfToken(secret: string, linkId: string): string {
  return createHmac("sha256", secret)
    .update("imagine-bot web csrf v1\n")
    .update(linkId)
    .digest("base64url");
}

export function csrfMatches(secret: string, linkId: string, given: unknown): boolean {
  return tokenMatches(csrfToken(secret, linkId), given);
}

function tokenMatches(token: string, given: unknown): boolean {
  if (typeof given !== "string") return false;
  const expected = Buffer.from(token);
  const actual = Buffer.from(given);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * csrfToken and csrfMatches for a server: each link's token is computed once (every page and
 * every answer of a rater needs it). Bounded: past `max` links it starts again.
 */
export class CsrfTokens {
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly secret: string,
    private readonly max = 10_000,
  ) {}

  of(linkId: string): string {
    let token = this.tokens.get(linkId);
    if (token === undefined) {
      token = csrfToken(this.secret, linkId);
      if (this.tokens.size >= this.max) this.tokens.clear();
      this.tokens.set(linkId, token);
    }
    return token;
  }

  matches(linkId: string, given: unknown): boolean {
    return tokenMatches(this.of(linkId), given);
  }
}

/**
 * Whether a state-changing request may come from this page: a browser's Origin (when sent) is
 * one of ours, and Sec-Fetch-Site (when sent) is not cross-site.
 */
export function sameOrigin(
  headers: { get(name: string): string | null },
  origins: ReadonlySet<string>,
): boolean {
  const origin = headers.get("origin");
  if (origin !== null && !origins.has(origin)) return false;
  const site = headers.get("sec-fetch-site");
  return site === null || site === "same-origin" || site === "none";
}

export interface RateLimit {
  /** Requests allowed at once. */
  burst: number;
  /** Requests per second refilled. */
  perSecond: number;
}

/** A token bucket per key (a link id). Buckets that are full again are dropped. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token: 0 when allowed, else the seconds until the next token. */
  take(key: string): number {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.limit.burst, at: now };
    bucket.tokens = Math.min(
      this.limit.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond,
    );
    bucket.at = now;
    if (bucket.tokens < 1) {
      this.buckets.set(key, bucket);
      return Math.ceil((1 - bucket.tokens) / this.limit.perSecond);
    }
    bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    if (this.buckets.size > 10_000) this.prune(now);
    return 0;
  }

  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      const refilled = bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond;
      if (refilled >= this.limit.burst) this.buckets.delete(key);
    }
  }
}
