/** Who runs a CLI command, as the commands' Invocation: `cli:<login name>`. */
import { userInfo } from "node:os";
import type { Invocation } from "../../commands/command.js";

export function cliInvocation(): Invocation {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = "local";
  }
  return { platform: "cli", user: `cli:${name}` };
}
