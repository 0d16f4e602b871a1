/**
 * The composition root (src/app): configuration first, the rest opened once on first use, one
 * close order; a missing image backend is a configuration problem, not a requester's mistake.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { openApp } from "../src/app/index.js";
import { ConfigError, isOperatorFixable, isRequesterError } from "../src/core/errors.js";
import { createLogger } from "../src/core/logger.js";
import { FakeBackend } from "./pipeline/fakes.js";

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-app-"));
});
afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    IMAGINE_DATA_DIR: dataDir,
    IMAGINE_LOG_LEVEL: "silent",
    IMAGINE_VOTE_STORE: "memory://",
    ...extra,
  };
}

describe("openApp", () => {
  it("reports a missing image backend as a configuration problem for the operator", async () => {
    const app = openApp({ env: env() });
    try {
      expect(() => app.backend()).toThrow(ConfigError);
      const error = await app.pipeline().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect(isRequesterError(error)).toBe(false);
      expect(isOperatorFixable(error)).toBe(true);
    } finally {
      await app.close();
    }
  });

  it("opens each part once and closes the pipeline, then the studies, then what they use", async () => {
    const backend = new FakeBackend();
    const app = openApp({ env: env(), backend, logger: createLogger({ level: "silent" }) });
    const pipeline = await app.pipeline();
    expect(await app.pipeline()).toBe(pipeline);
    const votes = await app.votes();
    expect(await app.votes()).toBe(votes);
    const studies = app.studies();
    expect(app.studies()).toBe(studies);

    const order: string[] = [];
    const track = (name: string, target: { close(): Promise<void> }) => {
      const close = target.close.bind(target);
      vi.spyOn(target, "close").mockImplementation(async () => {
        order.push(name);
        await close();
      });
    };
    track("pipeline", pipeline);
    track("studies", studies);
    track("votes", votes);
    track("backend", backend);
    track("arms", app.arms);
    await Promise.all([app.close(), app.close()]);
    expect(order.slice(0, 2)).toEqual(["pipeline", "studies"]);
    expect(order.slice(2).sort()).toEqual(["arms", "backend", "votes"]);
  });

  it("masks the platform secrets it is told about in every log line", async () => {
    const lines: string[] = [];
    const app = openApp({
      env: env({ IMAGINE_LOG_LEVEL: "info", DISCORD_TOKEN: "very-secret-token-123" }),
      secretVariables: ["DISCORD_TOKEN"],
      logDestination: new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    });
    app.logger.info({ token: "very-secret-token-123" }, "logging very-secret-token-123");
    await app.close();
    expect(lines.join("")).toContain("logging");
    expect(lines.join("")).not.toContain("very-secret-token-123");
  });
});
