/**
 * Votes: the keyv vote store (also the pipeline's GenerationStore), reactions ↔ scores, and
 * reconciliation of stored votes with the reactions visible on posted messages.
 */
export * from "./emoji.js";
export * from "./reconcile.js";
export * from "./store.js";
