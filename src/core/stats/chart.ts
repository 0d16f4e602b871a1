/**
 * The per-arm means chart, rendered on the server: a Vega-Lite spec compiled to Vega, drawn to
 * SVG without a browser (renderer "none"), then rasterised to PNG by sharp (librsvg). One point
 * per (arm, dimension) at the mean rating, a 95% (or the summaries' level) bootstrap CI as an
 * error bar, the mean printed beside it; sized for chat (800 × 450 by default).
 *
 * The same summaries give the same bytes on the same machine (no timestamps, no randomness).
 */
import sharp from "sharp";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { unique } from "./arrays.js";
import type { GroupSummary } from "./summary.js";

export interface ChartOptions {
  /** Pixels (default 800 × 450). */
  width?: number;
  height?: number;
  /** Title above the plot (default "Mean rating by arm"). */
  title?: string;
  /** Arm order on the x axis (default: order of appearance). */
  arms?: readonly string[];
  /** Display names for arms and dimensions (default quality → Quality (Q), faithfulness → Faithfulness (F)). */
  labels?: Record<string, string>;
  /** The rating scale's ends, for the y axis (default 1 and 4, the paper's Likert scale). */
  scale?: [number, number];
}

const DEFAULT_LABELS: Record<string, string> = {
  quality: "Quality (Q)",
  faithfulness: "Faithfulness (F)",
};
const FONT = "DejaVu Sans, Verdana, Arial, sans-serif";

/** The Vega-Lite spec of the chart, exported for tests and for anyone who wants the SVG. */
export function meansChartSpec(
  summaries: readonly GroupSummary[],
  options: ChartOptions = {},
): TopLevelSpec {
  if (summaries.length === 0) throw new RangeError("no summaries to chart");
  const width = options.width ?? 800;
  const height = options.height ?? 450;
  const labels = { ...DEFAULT_LABELS, ...options.labels };
  const arms = [...(options.arms ?? unique(summaries.map((s) => s.arm)))];
  const dimensions = unique(summaries.map((s) => s.dimension));
  const [low, high] = options.scale ?? [1, 4];
  const level = summaries.find((s) => s.ci !== null)?.ci?.level ?? 0.95;
  const values = summaries
    .filter((s) => arms.includes(s.arm))
    .map((s) => ({
      arm: labels[s.arm] ?? s.arm,
      dimension: labels[s.dimension] ?? s.dimension,
      mean: s.mean,
      low: s.ci?.low ?? s.mean,
      high: s.ci?.high ?? s.mean,
      label: s.mean.toFixed(2),
    }));
  const armDomain = arms.map((arm) => labels[arm] ?? arm);
  const dimensionDomain = dimensions.map((d) => labels[d] ?? d);
  const x = {
    field: "arm",
    type: "nominal" as const,
    sort: armDomain,
    title: null,
    axis: { labelAngle: 0, labelFontSize: 14, labelLimit: 240 },
  };
  const xOffset = { field: "dimension", type: "nominal" as const, sort: dimensionDomain };
  const color = {
    field: "dimension",
    type: "nominal" as const,
    sort: dimensionDomain,
    scale: { domain: dimensionDomain, range: ["#1f77b4", "#e6550d", "#31a354", "#756bb1"] },
    legend: {
      title: null,
      orient: "top" as const,
      labelFontSize: 14,
      labelLimit: 400,
      symbolSize: 150,
    },
  };
  const y = {
    field: "mean",
    type: "quantitative" as const,
    scale: { domain: [low, high], zero: false, nice: false },
    title: `Mean rating (${Math.round(level * 100)}% CI)`,
    axis: { tickMinStep: 0.5, labelFontSize: 13, titleFontSize: 14, grid: true },
  };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    width,
    height,
    autosize: { type: "fit", contains: "padding" },
    padding: 12,
    background: "white",
    title: { text: options.title ?? "Mean rating by arm", fontSize: 18, anchor: "start" },
    config: {
      font: FONT,
      view: { stroke: null },
      axis: { labelColor: "#222", titleColor: "#222" },
    },
    data: { values },
    layer: [
      {
        mark: { type: "rule", strokeWidth: 3 },
        encoding: { x, xOffset, color, y: { ...y, field: "low" }, y2: { field: "high" } },
      },
      {
        mark: { type: "tick", thickness: 3, size: 14, opacity: 1 },
        encoding: { x, xOffset, color, y: { ...y, field: "low" } },
      },
      {
        mark: { type: "tick", thickness: 3, size: 14, opacity: 1 },
        encoding: { x, xOffset, color, y: { ...y, field: "high" } },
      },
      {
        mark: { type: "point", filled: true, size: 140, opacity: 1 },
        encoding: { x, xOffset, color, y },
      },
      {
        mark: {
          type: "text",
          align: "center",
          baseline: "bottom",
          dy: -8,
          fontSize: 14,
          fontWeight: "bold",
          color: "#222",
        },
        encoding: { x, xOffset, y: { ...y, field: "high" }, text: { field: "label" } },
      },
    ],
  } as TopLevelSpec;
}

/** The chart as SVG text. */
export async function renderMeansSvg(
  summaries: readonly GroupSummary[],
  options: ChartOptions = {},
): Promise<string> {
  const compiled = compile(meansChartSpec(summaries, options)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Per-arm means with CI error bars for every dimension in the summaries (quality and
 * faithfulness), as PNG bytes of exactly width × height pixels.
 */
export async function renderMeansChart(
  summaries: readonly GroupSummary[],
  options: ChartOptions = {},
): Promise<Buffer> {
  const width = options.width ?? 800;
  const height = options.height ?? 450;
  const svg = await renderMeansSvg(summaries, options);
  // "fit" autosizing makes the SVG the requested size; resize guards against a rounding pixel.
  return sharp(Buffer.from(svg))
    .resize(width, height, { fit: "contain", background: "#ffffff" })
    .flatten({ background: "#ffffff" })
    .png({ compressionLevel: 9 })
    .toBuffer();
}
