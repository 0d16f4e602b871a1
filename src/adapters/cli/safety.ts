/**
 * `imagine-bot safety check [TEXT] [--input FILE] [--json]`: runs the explicit-text filter
 * (src/core/safety) with the configured extra and allowed words over TEXT, each line of FILE,
 * or each line of stdin. Exit code 0 whether or not anything is blocked; 2 for usage errors.
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Command } from "commander";
import { loadConfig } from "../../core/config.js";
import { UserError } from "../../core/errors.js";
import { loadExplicitFilter, type TextFilter } from "../../core/safety/index.js";

export function registerSafetyCommands(program: Command): Command {
  const safety = program.command("safety").description("The explicit-text filter");
  safety
    .command("check")
    .description(
      "Check TEXT, each line of --input FILE, or each line of stdin against the blocklist.\n" +
        "Prints blocked<TAB>entries<TAB>text or ok<TAB><TAB>text per line; exits 0 either way.",
    )
    .argument("[text]", "the text to check")
    .option("--input <file>", "a text file, one item per line (streamed)")
    .option("--json", 'print one {"text","blocked","matches"} line per input line')
    .action(async (text: string | undefined, flags: { input?: string; json?: boolean }) => {
      if (text !== undefined && flags.input !== undefined) {
        throw new UserError("USAGE", "give TEXT or --input FILE, not both");
      }
      if (flags.input !== undefined) {
        if (!existsSync(flags.input) || !statSync(flags.input).isFile()) {
          throw new UserError("USAGE", `--input ${flags.input}: no such file`);
        }
      } else if (text === undefined && process.stdin.isTTY) {
        throw new UserError(
          "USAGE",
          "nothing to check: give TEXT, --input FILE, or pipe lines into stdin",
        );
      }
      const { config } = loadConfig();
      const filter = loadExplicitFilter(config.safety);
      const json = flags.json === true;
      if (text !== undefined) {
        process.stdout.write(formatLine(filter, text, json));
        return;
      }
      const input =
        flags.input !== undefined ? createReadStream(flags.input, "utf8") : process.stdin;
      await checkLines(filter, input, json);
    });
  return safety;
}

async function checkLines(filter: TextFilter, input: Readable, json: boolean): Promise<void> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    const out = formatLine(filter, line, json);
    // Respect back-pressure so huge files stream through a pipe without buffering.
    if (!process.stdout.write(out)) {
      await new Promise<void>((resolve) => process.stdout.once("drain", resolve));
    }
  }
}

function formatLine(filter: TextFilter, text: string, json: boolean): string {
  const { blocked, matches } = filter.check(text);
  const entries = [...new Set(matches.map((m) => m.entry))];
  if (json) return `${JSON.stringify({ text, blocked, matches: entries })}\n`;
  return `${blocked ? "blocked" : "ok"}\t${entries.join(",")}\t${text}\n`;
}
