import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const _ROOT = resolve(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "imagine-agreement-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function csv(text: string): string {
  const path = join(dir, `ratings-${files++}.csv`);
  writeFileSync(path, text);
  return path;
}

// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4-observer, 12-unit
// example with missing values (absent rows), values 1–5: nominal .743, ordinal .815, interval .849.
const KRIPPENDORFF_2011 = [
  [1, 2, 3, 3, 2, 1, 4, 1, 2, null, null, null],
  [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, null, 3],
  [null, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, null],
  [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, null],
];
const krippendorffCsv = [
  "item,rater,score",
  ...KRIPPENDORFF_2011.flatMap((row, coder) =>
    row.flatMap((score, unit) =>
      score === null ? [] : [`u${unit + 1},${"ABCD"[coder]},${score}`],
    ),
  ),
].join("\n");

describe("imagine-bot agreement", () => {
  it("prints the JSON report of the published example, under 'all' without a dimension column", async () => {
    const { code, stdout, stderr } = await runCli([
      "agreement",
      "--input",
      csv(krippendorffCsv),
      "--categories",
      "1,2,3,4,5",
      "--json",
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(Object.keys(report)).toEqual(["dimensions"]);
    const all = report.dimensions.all;
    expect(all.n_items).toBe(12);
    expect(all.n_raters).toBe(4);
    expect(all.n_ratings).toBe(41);
    expect(all.krippendorff_alpha.nominal).toBeCloseTo(0.743, 3);
    expect(all.krippendorff_alpha.ordinal).toBeCloseTo(0.815, 3);
    expect(all.krippendorff_alpha.interval).toBeCloseTo(0.849, 3);
    expect(all.cohen.pairs).toHaveLength(6);
    expect(Object.keys(all.cohen)).toEqual(["unweighted", "linear", "quadratic", "pairs"]);
    // Only units 2–9 were coded by all four observers.
    expect(typeof all.fleiss_kappa).toBe("number");
    expect(Object.keys(all.likert)).toEqual(["mean", "sd"]);
  });

  it("reports per dimension, null with notes where a statistic is undefined", async () => {
    const input = csv(
      [
        "item,rater,score,dimension",
        "i1,a,1,quality",
        "i1,b,2,quality",
        "i2,a,3,quality",
        "i2,b,3,quality",
        "i3,a,4,quality",
        "i3,b,4,quality",
        "i1,a,2,faithfulness",
        "i1,b,2,faithfulness",
      ].join("\n"),
    );
    const { code, stdout } = await runCli(["agreement", "--input", input, "--json"]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(Object.keys(report.dimensions)).toEqual(["quality", "faithfulness"]);
    expect(report.dimensions.quality.notes).toBeUndefined();
    const faithfulness = report.dimensions.faithfulness;
    expect(faithfulness.cohen).toEqual({
      unweighted: null,
      linear: null,
      quadratic: null,
      pairs: [],
    });
    expect(faithfulness.notes["cohen.quadratic"]).toMatch(
      /no pair of raters shares at least 2 items/,
    );
    expect(faithfulness.krippendorff_alpha).toEqual({
      nominal: null,
      ordinal: null,
      interval: null,
    });
    expect(faithfulness.notes["krippendorff_alpha.interval"]).toMatch(/no expected disagreement/);
    expect(stdout).not.toMatch(/NaN/);

    const table = await runCli(["agreement", "--input", input]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^quality: 3 items, 2 raters, 6 ratings\n/);
    expect(table.stdout).toMatch(/Krippendorff's α\s+n\/a \(no expected disagreement/);
    // The inputs behind each statistic are in the table too, not only in the JSON.
    expect(table.stdout).toMatch(
      /ratings per item\s+min 2, mean 2\.00, max 2; 3 items with two or more/,
    );
    expect(table.stdout).toMatch(/percent agreement \(share\)\s+0\.667/);
    expect(table.stdout).toMatch(/Fleiss' κ\s+\S+\s+\(complete block: 3 items × 2 raters\)/);
  });

  it.each([
    [
      "item,rater,score\ni1,a,1\ni1,b,5\n",
      [],
      /:3: score "5" is not one of the categories 1,2,3,4/,
    ],
    ["item,rater,score\ni1,a,1\ni1,b,x\n", [], /:3: score "x" is not one of the categories/],
    [
      "item,rater,score\ni1,a,1\ni2,a,2\ni1,a,3\n",
      [],
      /:4: rater a already rated item i1 on line 2/,
    ],
    [
      "item,rater,score,dimension\ni1,a,1,quality\ni1,a,1,faithfulness\ni1,a,2,quality\n",
      [],
      /:4: rater a already rated item i1 on quality on line 2/,
    ],
    ["item,who,score\ni1,a,1\n", [], /:1: the header needs the columns item,rater,score/],
    ["item,rater,score\n,a,1\n", [], /:2: the item is empty/],
    ["item,rater,score\n", [], /no ratings after the header/],
    ["item,rater,score\ni1,a,1\n", ["--categories", "1,x"], /distinct ascending numbers/],
    ["item,rater,score\ni1,a,5\n", ["--categories", "1,2,3,4,5"], null],
  ])("validates %j with exit 2 and the line number", async (text, extra, message) => {
    const { code, stderr, stdout } = await runCli(["agreement", "--input", csv(text), ...extra]);
    if (message === null) {
      expect(code).toBe(0);
      return;
    }
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
  });

  it("exits 2 for a missing file", async () => {
    const { code, stderr } = await runCli(["agreement", "--input", join(dir, "nope.csv")]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/cannot read the file/);
  });
});
