/**
 * Runs the `imagine-bot` command line as a user does: a child process from the TypeScript
 * sources (through tsx), with a clean environment plus what the test sets.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";

export const ROOT = resolve(import.meta.dirname, "..", "..");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", resolve(ROOT, "src/adapters/cli/main.ts"), ...args],
      // The machine's own variables must not leak in: only PATH, the run's temp folder
      // (test/helpers/tmpdir.ts) and what the test sets.
      { cwd: ROOT, env: { ...testProcessEnv(), IMAGINE_LOG_LEVEL: "silent", ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The variables a test's child process starts from: PATH and the run's TMPDIR, nothing else. */
export function testProcessEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
  };
}
