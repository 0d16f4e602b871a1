/** `imagine-bot data concepts`: candidate evaluation subjects from captions, for a manual pass. */
import { existsSync } from "node:fs";
import { type Command, Option } from "commander";
import { type ConceptReport, extractConcepts } from "../../core/data/concepts.js";
import { CAPTION_FORMATS } from "../../core/data/readers.js";
import { UserError } from "../../core/errors.js";
import { integer } from "./parse.js";

export function registerConceptsCommand(data: Command): Command {
  return data
    .command("concepts")
    .description(
      "Noun phrases of captions ranked as evaluation subjects by\n" +
        "frequency × ambiguity (WordNet noun senses) × length; every part is printed for a manual pass",
    )
    .requiredOption(
      "--input <file...>",
      "caption files: .txt (one caption per line), .csv, .tsv, .jsonl or .parquet",
    )
    .addOption(
      new Option("--format <format>", "input format (default: from the extension)").choices(
        CAPTION_FORMATS,
      ),
    )
    .option("--column <name>", "caption column or field (default: TEXT, else caption)")
    .option(
      "--limit <n>",
      "read at most this many non-empty captions",
      integer(1, Number.MAX_SAFE_INTEGER),
      300_000,
    )
    .option("--top <n>", "how many subjects to print", integer(1, Number.MAX_SAFE_INTEGER), 10)
    .option(
      "--min-count <n>",
      "ignore phrases found in fewer captions",
      integer(1, Number.MAX_SAFE_INTEGER),
      5,
    )
    .option("--json", "print the subjects as a JSON array")
    .action(async (flags) => {
      for (const input of flags.input as string[]) {
        if (!existsSync(input)) throw new UserError("USAGE", `--input ${input}: no such file`);
      }
      const report = await extractConcepts({
        inputs: flags.input,
        format: flags.format,
        column: flags.column,
        limit: flags.limit,
        top: flags.top,
        minCount: flags.minCount,
      });
      process.stdout.write(
        flags.json ? `${JSON.stringify(report.concepts)}\n` : formatConcepts(report),
      );
    });
}

/** A plain table: one row per subject, every part of the score in its own column. */
export function formatConcepts(report: ConceptReport): string {
  const header = [
    "rank",
    "phrase",
    "count",
    "senses",
    "words",
    "frequency",
    "ambiguity",
    "length",
    "total",
  ];
  const rows = report.concepts.map((c) => [
    String(c.rank),
    c.phrase,
    String(c.count),
    c.senses === null ? "-" : String(c.senses),
    String(c.words),
    c.frequencyScore.toFixed(3),
    c.ambiguityScore.toFixed(3),
    c.lengthScore.toFixed(3),
    c.total.toFixed(3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 1 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return (
    `# ${report.captions} captions${report.malformed > 0 ? ` (${report.malformed} malformed rows skipped)` : ""}, ` +
    `${report.phrases} distinct noun phrases, ${report.candidates} seen often enough to rank\n` +
    `# total = frequency × ambiguity × length; senses "-" = not in WordNet (scored as 2)\n` +
    [line(header), ...rows.map(line)].join("\n") +
    "\n"
  );
}
