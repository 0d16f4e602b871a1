import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, REDACTED } from "../src/core/logger.js";

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return { lines, destination };
}

describe("logger", () => {
  it("writes JSON lines with level, time and message", () => {
    const { lines, destination } = capture();
    createLogger({ level: "info", destination }).info({ arm: "ft-tags" }, "prompt model loaded");
    const entry = JSON.parse(lines[0] as string);
    expect(entry).toMatchObject({ level: 30, arm: "ft-tags", msg: "prompt model loaded" });
    expect(typeof entry.time).toBe("string");
  });

  it("redacts secrets by field name, nested too", () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: "info", destination });
    logger.info(
      { token: "hf_abcdef", request: { headers: { authorization: "Bearer x" }, apiKey: "k" } },
      "call",
    );
    const entry = JSON.parse(lines[0] as string);
    expect(entry.token).toBe(REDACTED);
    expect(entry.request.apiKey).toBe(REDACTED);
    expect(entry.request.headers.authorization).toBe(REDACTED);
  });

  it("masks a secret's value wherever it appears, children included", () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: "debug", destination, secrets: ["hf_SeCrEt123"] });
    logger
      .child({ arm: "hub" })
      .error({ detail: "server said hf_SeCrEt123 is invalid" }, "failed with hf_SeCrEt123");
    expect(lines[0]).not.toContain("hf_SeCrEt123");
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      arm: "hub",
      msg: `failed with ${REDACTED}`,
    });
  });

  it("respects the level", () => {
    const { lines, destination } = capture();
    createLogger({ level: "warn", destination }).info({}, "hidden");
    expect(lines).toEqual([]);
  });
});
