/** Votes: the keyv vote store (also the pipeline's GenerationStore) and reactions ↔ scores. */
export * from "./emoji.js";
export * from "./store.js";
