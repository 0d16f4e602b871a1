/**
 * ProgressLine collapses bursts: per-step render lines (the local backend reports every
 * denoising step) arriving while a chat edit is in flight become one edit showing the latest.
 */
import { describe, expect, it } from "vitest";
import type { Conversation } from "../../src/adapters/chat/platform.js";
import { ProgressLine } from "../../src/adapters/chat/progress.js";
import { createLogger } from "../../src/core/logger.js";

describe("ProgressLine", () => {
  it("shows the latest render step after a slow edit, not every step", async () => {
    const shown: string[] = [];
    let release: () => void = () => {};
    let editStarted: () => void = () => {};
    const firstEdit = new Promise<void>((resolve) => {
      editStarted = resolve;
    });
    const conversation = {
      status: async (text: string) => {
        shown.push(text);
        if (shown.length === 1) {
          // The first edit is slow: it finishes only when the test says so.
          await new Promise<void>((resolve) => {
            release = resolve;
            editStarted();
          });
        }
      },
    } as unknown as Conversation;
    const line = new ProgressLine(conversation, createLogger({ level: "silent" }));
    line.start();
    line.show({ kind: "rendering", index: 1, of: 1 });
    await firstEdit;
    for (let step = 1; step <= 4; step++) {
      line.show({ kind: "rendering", index: 1, of: 1, step, steps: 4 });
    }
    release();
    await line.finish();
    expect(shown).toEqual(["Rendering…", "Rendering 4/4…"]);
  });
});
