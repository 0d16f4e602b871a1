/** Studies: blind, balanced arm assignment (live), the paper's batch plan, results after close. */
export * from "./assign.js";
export * from "./export.js";
export * from "./manager.js";
export * from "./plan.js";
export * from "./post.js";
export * from "./record.js";
export * from "./report.js";
export * from "./results.js";
export * from "./runner.js";
