import { describe, expect, it } from "vitest";
import { RateLimiter, sameOrigin } from "../../src/adapters/web/security.js";
import { readWebSettings } from "../../src/core/study/webSettings.js";

const SECRET = "0123456789abcdef0123456789abcdef";

describe("web settings", () => {
  it("defaults to 127.0.0.1:8787 and names the variable in every error", () => {
    expect(readWebSettings({ IMAGINE_WEB_SECRET: SECRET })).toEqual({
      secret: SECRET,
      host: "127.0.0.1",
      port: 8787,
    });
    expect(
      readWebSettings({
        IMAGINE_WEB_SECRET: SECRET,
        IMAGINE_WEB_HOST: "0.0.0.0",
        IMAGINE_WEB_PORT: "0",
        IMAGINE_WEB_URL: "https://survey.example.org/",
      }),
    ).toEqual({
      secret: SECRET,
      host: "0.0.0.0",
      port: 0,
      publicUrl: "https://survey.example.org",
    });
    expect(() => readWebSettings({})).toThrow(/IMAGINE_WEB_SECRET is not set/);
    const bad: [Record<string, string>, RegExp][] = [
      [{ IMAGINE_WEB_PORT: "http" }, /IMAGINE_WEB_PORT must be a port number/],
      [{ IMAGINE_WEB_PORT: "70000" }, /IMAGINE_WEB_PORT must be a port number/],
      [{ IMAGINE_WEB_HOST: "example.org" }, /IMAGINE_WEB_HOST must be an IP address/],
      [{ IMAGINE_WEB_URL: "survey.example.org" }, /IMAGINE_WEB_URL is not a URL/],
      [{ IMAGINE_WEB_URL: "https://x.org/?a=1" }, /IMAGINE_WEB_URL must not have a query/],
    ];
    for (const [env, message] of bad) {
      expect(() => readWebSettings({ IMAGINE_WEB_SECRET: SECRET, ...env })).toThrow(message);
    }
  });
});

describe("web security helpers", () => {
  it("rate-limits per key with a burst and a steady refill", () => {
    let now = 0;
    const limiter = new RateLimiter({ burst: 3, perSecond: 2 }, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take("a"))).toEqual([0, 0, 0, 1]);
    expect(limiter.take("b")).toBe(0);
    now = 499;
    expect(limiter.take("a")).toBe(1);
    // By 1 s, two tokens have come back (2 per second).
    now = 1_000;
    expect([1, 2, 3].map(() => limiter.take("a"))).toEqual([0, 0, 1]);
  });

  it("accepts same-origin or header-less requests only", () => {
    const origins = new Set(["http://127.0.0.1:8787", "https://survey.example.org"]);
    const check = (headers: Record<string, string>) => sameOrigin(new Headers(headers), origins);
    expect(check({})).toBe(true);
    expect(check({ origin: "https://survey.example.org", "sec-fetch-site": "same-origin" })).toBe(
      true,
    );
    expect(check({ origin: "null" })).toBe(false);
    expect(check({ origin: "https://evil.example" })).toBe(false);
    expect(check({ "sec-fetch-site": "same-site" })).toBe(false);
    expect(check({ "sec-fetch-site": "cross-site" })).toBe(false);
  });
});
