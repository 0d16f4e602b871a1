/** Flag value parsers shared by the CLI's commands: they turn bad values into usage errors. */
import { InvalidArgumentError } from "commander";

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
