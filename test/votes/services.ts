/**
 * The Redis and PostgreSQL servers the vote-store tests run against, from the environment
 * (`eval "$(scripts/services.sh)"` starts both and prints the variables; scripts/test.sh does it).
 * A missing variable fails the suite with the command that fixes it: a skipped backend would let
 * a broken store pass unseen.
 */
import { describe, it } from "vitest";

export function requireService(variable: string, what: string): string | undefined {
  const value = process.env[variable]?.trim();
  if (value) return value;
  const reason = `${variable} is not set: these tests need a real ${what} server. Run \`eval "$(scripts/services.sh)"\` (installs and starts Redis and PostgreSQL, then prints the variables), or run scripts/test.sh.`;
  describe(`${what} vote store`, () => {
    it("has a server to test against", () => {
      throw new Error(reason);
    });
  });
  return undefined;
}

/** A name unique to this test run, safe in keys, table names and URLs. */
export function runId(): string {
  return `t${Date.now().toString(36)}${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}
