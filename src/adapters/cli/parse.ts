/** Flag value parsers shared by the CLI's commands: they turn bad values into usage errors. */
import { writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { InvalidArgumentError } from "commander";
import { UserError } from "../../core/errors.js";

export function integer(min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return parsed;
  };
}

export function fraction(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0 || parsed >= 1) {
    throw new InvalidArgumentError("expected a number from 0 up to (not including) 1");
  }
  return parsed;
}

/**
 * Ends a command with this exit code and no further message: the command has already said what
 * went wrong (`doctor` lists its failed checks).
 */
export class CommandExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = "CommandExit";
  }
}

/**
 * Writes a file the user named (--out, --chart). What the user can fix — a folder that does not
 * exist, no permission, a folder where a file should be — is a usage error that says so.
 */
export async function writeOutputFile(path: string, content: string | Uint8Array): Promise<void> {
  try {
    await writeFile(path, content);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? `the folder ${dirname(resolve(path))} does not exist`
        : code === "EACCES" || code === "EPERM"
          ? "no permission to write there"
          : code === "EISDIR"
            ? "it is a folder; name a file"
            : code === "ENOSPC"
              ? "the disk is full"
              : undefined;
    if (why === undefined) throw error;
    throw new UserError("USAGE", `cannot write ${path}: ${why}`);
  }
}
