import { describe, expect, it } from "vitest";
import { createProgress, formatDuration } from "../../src/core/data/progress.js";

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, columns: 120, writes, write: (text: string) => writes.push(text) };
}

describe("progress", () => {
  it("is quiet when the stream is not a TTY", () => {
    const out = stream(false);
    const progress = createProgress({ stream: out });
    progress.update(100, 0.5);
    progress.done();
    expect(out.writes).toEqual([]);
  });

  it("updates one line with rows, rows/s and an ETA, throttled, and clears it", () => {
    const out = stream(true);
    let clock = 0;
    const progress = createProgress({ stream: out, label: "prepare", now: () => clock });
    clock = 2000;
    progress.update(100_000, 0.25);
    clock = 2100;
    progress.update(110_000, 0.3); // within the interval: not drawn
    clock = 4000;
    progress.update(200_000);
    progress.done();
    expect(out.writes).toEqual([
      "\rprepare: 100,000 read, 50,000/s, 25.0%, ETA 6s\u001b[K",
      "\rprepare: 200,000 read, 50,000/s\u001b[K",
      "\r\u001b[K",
    ]);
  });

  it("formats durations", () => {
    expect(formatDuration(5.4)).toBe("5s");
    expect(formatDuration(125)).toBe("2m05s");
    expect(formatDuration(3 * 3600 + 7 * 60)).toBe("3h07m");
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe("?");
  });
});
