import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { meansChartSpec, renderMeansChart, renderMeansSvg } from "../../src/core/stats/chart.js";
import type { GroupSummary } from "../../src/core/stats/index.js";

const summary = (arm: string, dimension: string, mean: number, half: number): GroupSummary => ({
  arm,
  dimension,
  n: 150,
  mean,
  sd: 0.9,
  ci: { low: mean - half, high: mean + half, level: 0.95, resamples: 2000 },
});
// The paper's Table 1 means.
const PAPER = [
  summary("base", "quality", 2.81, 0.15),
  summary("base", "faithfulness", 3.02, 0.16),
  summary("ft-no-tags", "quality", 2.96, 0.15),
  summary("ft-no-tags", "faithfulness", 2.72, 0.19),
  summary("ft-tags", "quality", 3.04, 0.14),
  summary("ft-tags", "faithfulness", 2.77, 0.18),
];

describe("renderMeansChart", () => {
  it("returns an 800×450 PNG that sharp decodes", async () => {
    const png = await renderMeansChart(PAPER);
    expect(png.subarray(0, 8)).toEqual(
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    );
    const meta = await sharp(png).metadata();
    expect(meta).toMatchObject({ format: "png", width: 800, height: 450 });
    // Not a blank image: the marks are drawn.
    const stats = await sharp(png).stats();
    expect(stats.channels[0]?.min).toBeLessThan(100);
  });

  it("gives the same bytes for the same input, other bytes for other input", async () => {
    const a = await renderMeansChart(PAPER);
    const b = await renderMeansChart(PAPER);
    expect(b.equals(a)).toBe(true);
    const c = await renderMeansChart(PAPER.map((s) => ({ ...s, mean: s.mean - 0.3 })));
    expect(c.equals(a)).toBe(false);
  });

  it("honours the size and labels both dimensions, arms and the means", async () => {
    const png = await renderMeansChart(PAPER, { width: 640, height: 360 });
    expect(await sharp(png).metadata()).toMatchObject({ width: 640, height: 360 });
    const svg = await renderMeansSvg(PAPER);
    for (const text of [
      "Quality (Q)",
      "Faithfulness (F)",
      "base",
      "ft-no-tags",
      "ft-tags",
      "2.81",
      "3.04",
      "95% CI",
    ]) {
      expect(svg).toContain(text);
    }
  });

  it("draws no error bar for a single rating, and refuses nothing to chart", async () => {
    const single: GroupSummary = {
      arm: "base",
      dimension: "quality",
      n: 1,
      mean: 3,
      sd: null,
      ci: null,
    };
    const spec = meansChartSpec([single]) as unknown as {
      data: { values: { low: number; high: number }[] };
    };
    expect(spec.data.values[0]).toMatchObject({ low: 3, high: 3 });
    expect((await sharp(await renderMeansChart([single])).metadata()).width).toBe(800);
    expect(() => meansChartSpec([])).toThrow(/no summaries/);
  });
});
