import { describe, expect, it } from "vitest";
import { UserError } from "../../src/core/errors.js";
import { validateSubject } from "../../src/core/prompt/subject.js";

describe("validateSubject", () => {
  it("trims and accepts ordinary subjects, emoji counted once", () => {
    expect(validateSubject("  a lighthouse  ", 200)).toBe("a lighthouse");
    expect(validateSubject("🦊".repeat(10), 10)).toBe("🦊".repeat(10));
  });

  it.each([
    ["", /empty/],
    [" \t\n ", /empty/],
    ["x".repeat(201), /201 characters.*limit is 200/],
    ["a\u0000b", /control character \(U\+0000\)/],
    ["line one\nline two", /control character/],
    ["evil \u202e text", /U\+202E/],
  ])("refuses %j with a clear reason", (subject, reason) => {
    expect(() => validateSubject(subject, 200)).toThrow(UserError);
    expect(() => validateSubject(subject, 200)).toThrow(reason);
  });
});
