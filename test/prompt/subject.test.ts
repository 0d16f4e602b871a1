import { describe, expect, it } from "vitest";
import { UserError } from "../../src/core/errors.js";
import { stripMarkup, validateSubject } from "../../src/core/safety/subject.js";

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
    ["a\u001bbell", /control character \(U\+001B\)/],
    ["a\u0085b\u0090", /control character \(U\+0090\)/],
  ])("refuses %j with a clear reason", (subject, reason) => {
    expect(() => validateSubject(subject, 200)).toThrow(UserError);
    expect(() => validateSubject(subject, 200)).toThrow(reason);
  });
});

describe("stripMarkup", () => {
  it.each([
    ["<@123456789012345678> a red fox", "a red fox"],
    ["<@!123> a red fox <@&456>", "a red fox"],
    ["a red fox in <#987654321>", "a red fox in"],
    ["<:fox:1234567890> a red fox <a:wave:42>", "a red fox"],
    ["a red fox <t:1700000000:R>", "a red fox"],
    ["</imagine:123> a red fox", "a red fox"],
    ["<@U024BE7LH> a red fox <@U024BE7LH|bob>", "a red fox"],
    ["a red fox <#C024BE7LR|general>", "a red fox"],
    ["<!here> a red fox <!channel> <!subteam^SAZ94GDB8|@team>", "a red fox"],
    ["a red fox <https://example.com/fox.png>", "a red fox"],
    ["a red fox from <http://example.com|example.com>", "a red fox from example.com"],
    ["**a red** __fox__ ~~dog~~", "a red fox dog"],
    ["`a red fox` ```in snow```", "a red fox in snow"],
    ["a ||red|| fox", "a red fox"],
    ["salt &amp; pepper, 1 &lt; 2 &gt; 0", "salt & pepper, 1 < 2 > 0"],
    ["  a   red\tfox  ", "a red fox"],
    ["I <3 foxes, 2 < 3", "I <3 foxes, 2 < 3"],
    ["a lighthouse", "a lighthouse"],
  ])("%j → %j", (raw, expected) => {
    expect(stripMarkup(raw)).toBe(expected);
  });
});

describe("validateSubject strips markup", () => {
  it("strips mentions and markup, then checks emptiness and length again", () => {
    expect(validateSubject("<@123> **a lighthouse**", 200)).toBe("a lighthouse");
    for (const raw of ["<@123>", "<@U1> <#C2|x> **** ||  ||"]) {
      expect(() => validateSubject(raw, 200)).toThrow(
        /empty once mentions and formatting are removed/,
      );
    }
    expect(() => validateSubject("<https://example.com>", 200)).toThrow(/link/);
    // Markup does not count towards the length limit; what is left does.
    expect(validateSubject(`<@${"1".repeat(30)}> fox`, 5)).toBe("fox");
    expect(() => validateSubject("**abcdef**", 5)).toThrow(/limit is 5/);
  });

  it("collapses newlines and removes bidi controls instead of refusing them", () => {
    expect(validateSubject("line one\nline two", 200)).toBe("line one line two");
    expect(validateSubject("evil \u202e text", 200)).toBe("evil text");
  });
});
