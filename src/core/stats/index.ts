/** Statistics over ratings: summaries, agreement, arm comparisons. Pure functions. */
export * from "./agreement.js";
export * from "./cluster.js";
export * from "./compare.js";
export * from "./distributions.js";
export * from "./ratings.js";
export * from "./report.js";
export * from "./summary.js";
