/**
 * vitest globalSetup: every temporary file or folder a test makes (os.tmpdir(), mkdtemp) lands in
 * one folder for this run, removed when the run ends, pass or fail, so that no test can leak
 * temp folders into /tmp whatever its own cleanup does. Workers and the CLI processes that tests
 * start inherit TMPDIR.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const runDir = mkdtempSync(join(tmpdir(), "imagine-bot-tests-"));
  process.env.TMPDIR = runDir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(runDir, { recursive: true, force: true });
  };
}
