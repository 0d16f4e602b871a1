/** `imagine-bot agreement`: inter-rater agreement of a ratings CSV, per dimension. */
import { readFileSync } from "node:fs";
import { type Command, InvalidArgumentError } from "commander";
import { type Info, parse } from "csv-parse/sync";
import { UserError } from "../../core/errors.js";
import {
  type AgreementReport,
  agreementReport,
  DEFAULT_CATEGORIES,
  type DimensionReport,
  type Rating,
} from "../../core/stats/index.js";
import { integer } from "./parse.js";

export function registerAgreementCommand(program: Command): Command {
  return program
    .command("agreement")
    .description(
      "Inter-rater agreement of ratings: Cohen's κ (per rater pair, unweighted/linear/quadratic), " +
        "Fleiss' κ, Krippendorff's α (nominal/ordinal/interval), percent agreement, per dimension",
    )
    .requiredOption(
      "--input <file>",
      "CSV with a header: item,rater,score and optionally dimension (a missing rating is an absent row)",
    )
    .option(
      "--categories <list>",
      "the rating scale, comma-separated ascending numbers (default 1,2,3,4)",
      categoryList,
    )
    .option(
      "--min-shared-items <n>",
      "Cohen's κ only for rater pairs with at least this many items in common",
      integer(1, Number.MAX_SAFE_INTEGER),
      2,
    )
    .option("--json", 'print {"dimensions": {"<name>": {…}}} (null where undefined, with "notes")')
    .action((flags) => {
      const categories: readonly number[] = flags.categories ?? DEFAULT_CATEGORIES;
      const ratings = readRatingsCsv(flags.input as string, categories);
      const report = agreementReport(ratings, {
        categories,
        minSharedItems: flags.minSharedItems as number,
      });
      process.stdout.write(
        flags.json ? `${JSON.stringify(report)}\n` : formatAgreementReport(report),
      );
    });
}

/** "1,2,3,4" → [1, 2, 3, 4]: distinct ascending numbers, at least two. */
export function categoryList(value: string): number[] {
  const parts = value.split(",").map((part) => part.trim());
  const numbers = parts.map(Number);
  if (
    parts.length < 2 ||
    parts.some((part) => part === "") ||
    numbers.some((n) => !Number.isFinite(n)) ||
    numbers.some((n, i) => i > 0 && n <= (numbers[i - 1] as number))
  ) {
    throw new InvalidArgumentError(
      "expected two or more distinct ascending numbers separated by commas, e.g. 1,2,3,4",
    );
  }
  return numbers;
}

/**
 * Reads and validates a ratings CSV. Every problem is a UserError naming the file and line:
 * a missing column, an empty item or rater, a score outside the categories, a duplicate
 * (item, rater, dimension) row.
 */
export function readRatingsCsv(file: string, categories: readonly number[]): Rating[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new UserError(
      "USAGE",
      `--input ${file}: cannot read the file (${(error as Error).message})`,
    );
  }
  let rows: { info: Info; record: string[] }[];
  try {
    rows = parse(text, {
      bom: true,
      info: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: false,
    }) as unknown as { info: Info; record: string[] }[];
  } catch (error) {
    throw new UserError("USAGE", `${file}: not a valid CSV: ${(error as Error).message}`);
  }
  const header = rows[0];
  if (header === undefined) throw new UserError("USAGE", `${file}: the file is empty`);
  const columns = header.record.map((name) => name.toLowerCase());
  const column = (name: string): number => columns.indexOf(name);
  for (const required of ["item", "rater", "score"]) {
    if (column(required) === -1) {
      throw new UserError(
        "USAGE",
        `${file}:${header.info.lines}: the header needs the columns item,rater,score (and optionally dimension); found ${header.record.join(",")}`,
      );
    }
  }
  const itemColumn = column("item");
  const raterColumn = column("rater");
  const scoreColumn = column("score");
  const dimensionColumn = column("dimension");
  const allowed = new Set(categories);
  const seen = new Map<string, number>();
  const ratings: Rating[] = [];
  for (const { info, record } of rows.slice(1)) {
    const line = info.lines;
    const where = `${file}:${line}`;
    const item = record[itemColumn] ?? "";
    const rater = record[raterColumn] ?? "";
    const scoreText = record[scoreColumn] ?? "";
    const dimension = dimensionColumn === -1 ? undefined : (record[dimensionColumn] ?? "");
    if (item === "") throw new UserError("USAGE", `${where}: the item is empty`);
    if (rater === "") throw new UserError("USAGE", `${where}: the rater is empty`);
    if (dimension === "") throw new UserError("USAGE", `${where}: the dimension is empty`);
    const score = scoreText === "" ? Number.NaN : Number(scoreText);
    if (!allowed.has(score)) {
      throw new UserError(
        "USAGE",
        `${where}: score "${scoreText}" is not one of the categories ${categories.join(",")} (leave the row out for a missing rating)`,
      );
    }
    const key = `${dimension ?? ""}\u0000${item}\u0000${rater}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new UserError(
        "USAGE",
        `${where}: rater ${rater} already rated item ${item}${dimension === undefined ? "" : ` on ${dimension}`} on line ${earlier}; keep one rating per (item, rater, dimension)`,
      );
    }
    seen.set(key, line);
    ratings.push(
      dimension === undefined ? { item, rater, score } : { item, rater, score, dimension },
    );
  }
  if (ratings.length === 0) throw new UserError("USAGE", `${file}: no ratings after the header`);
  return ratings;
}

/** The report as a readable table, one block per dimension. */
export function formatAgreementReport(report: AgreementReport): string {
  const blocks = Object.entries(report.dimensions).map(([name, d]) => formatDimension(name, d));
  return `${blocks.join("\n")}`;
}

function formatDimension(name: string, d: DimensionReport): string {
  const notes = d.notes ?? {};
  const show = (value: number | null, field: string): string =>
    value === null ? `n/a (${notes[field] ?? "undefined"})` : value.toFixed(3);
  /** Labelled values; one "n/a (reason)" when all are null for the same reason. */
  const group = (entries: [string, number | null, string][]): string => {
    const reasons = new Set(
      entries.map(([, value, field]) => (value === null ? notes[field] : "")),
    );
    if (entries.every(([, value]) => value === null) && reasons.size === 1) {
      return show(null, (entries[0] as [string, number | null, string])[2]);
    }
    return entries.map(([label, value, field]) => `${label} ${show(value, field)}`).join("  ");
  };
  const definedPairs = d.cohen.pairs.filter((p) => p.unweighted !== null).length;
  const rows: [string, string][] = [
    [
      "ratings per item",
      `min ${d.ratings_per_item.min}, mean ${d.ratings_per_item.mean.toFixed(2)}, max ${d.ratings_per_item.max}; ${count(d.n_pairable_items, "item")} with two or more`,
    ],
    ["percent agreement (share)", show(d.percent_agreement, "percent_agreement")],
    [
      `Cohen's κ, mean of ${d.cohen.pairs.length} pairs`,
      group([
        ["unweighted", d.cohen.unweighted, "cohen.unweighted"],
        ["linear", d.cohen.linear, "cohen.linear"],
        ["quadratic", d.cohen.quadratic, "cohen.quadratic"],
      ]) + (definedPairs < d.cohen.pairs.length ? `  (defined for ${definedPairs})` : ""),
    ],
    [
      "Fleiss' κ",
      `${show(d.fleiss_kappa, "fleiss_kappa")}  (complete block: ${count(d.fleiss_complete_block.n_items, "item")} × ${count(d.fleiss_complete_block.n_raters, "rater")})`,
    ],
    [
      "Krippendorff's α",
      group([
        ["nominal", d.krippendorff_alpha.nominal, "krippendorff_alpha.nominal"],
        ["ordinal", d.krippendorff_alpha.ordinal, "krippendorff_alpha.ordinal"],
        ["interval", d.krippendorff_alpha.interval, "krippendorff_alpha.interval"],
      ]),
    ],
    ["mean (SD)", `${show(d.likert.mean, "likert.mean")} (${show(d.likert.sd, "likert.sd")})`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return (
    `${name}: ${count(d.n_items, "item")}, ${count(d.n_raters, "rater")}, ${count(d.n_ratings, "rating")}\n` +
    rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}\n`).join("")
  );
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
