/**
 * The one subject gate against a table of hostile subjects (test/safety/hostile.ts), and the
 * text cleaning it shares with the explicit filter.
 */
import { describe, expect, it } from "vitest";
import {
  cleanText,
  findLink,
  gateSubject,
  loadExplicitFilter,
} from "../../src/core/safety/index.js";
import { HOSTILE_SUBJECTS, outcomeOf } from "./hostile.js";

const filter = loadExplicitFilter();
const gate = (subject: string) => gateSubject(subject, { maxLength: 200, filter });

describe("gateSubject on hostile subjects", () => {
  it.each(HOSTILE_SUBJECTS)("%s: %j", (_label, subject, expected) => {
    expect(outcomeOf(() => gate(subject))).toEqual(expected);
  });

  it("never echoes the refused word or link", () => {
    for (const [, subject, expected] of HOSTILE_SUBJECTS) {
      if ("accept" in expected) continue;
      try {
        gate(subject);
      } catch (error) {
        const message = (error as Error).message;
        expect(message).not.toMatch(/porn|naked|fuck|evil|nitro|example/i);
        expect(message).not.toContain(subject);
      }
    }
  });

  it("refuses links with a message that says what to do instead", () => {
    expect(() => gate("[free nitro](https://evil.example) a cat")).toThrow(
      "The subject contains a link, and the bot never posts links: describe the image in words instead.",
    );
  });
});

describe("cleanText", () => {
  it.each([
    ["a\u200b\u200c\u200d\u200e\u200f red", "a red"],
    ["a\u2060\ufeff\u061c red", "a red"],
    ["a\u202a\u202b\u202c\u202d\u202e red", "a red"],
    ["a\u2066\u2067\u2068\u2069 red", "a red"],
    ["a\u00ad\u180e red", "a red"],
    ["line\nbreak\r\nand\ttab\u2029end", "line break and tab end"],
    ["\ufb01ne \u2460", "fine 1"],
    ["\u{1f468}\u200d\u{1f469}\u200d\u{1f467}", "\u{1f468}\u200d\u{1f469}\u200d\u{1f467}"],
    ["\u{1f44d}\u{1f3fd}\u200d\u{1f525}", "\u{1f44d}\u{1f3fd}\u200d\u{1f525}"],
    ["\u2764\ufe0f", "\u2764\ufe0f"],
  ])("%j → %j", (raw, expected) => {
    expect(cleanText(raw)).toBe(expected);
  });

  it("removes the characters the filter ignores, so both see the same word", () => {
    const hidden = "po\u200b\u2060\u202e\u00adrn";
    expect(cleanText(hidden)).toBe("porn");
    expect(filter.check(hidden).matches.map((m) => m.entry)).toEqual(["porn"]);
  });
});

describe("findLink", () => {
  it.each([
    "version 1.2 of the robot",
    "Mr.Bean on a bench",
    "a cat, i.e. a small one",
    "the U.S.A. flag",
    "node.js logo",
    "a 4.5/5 rating",
    "1/2 cup of sugar",
    "[a cat] (sitting on a mat)",
  ])("finds no link in %j", (text) => {
    expect(findLink(text)).toBeUndefined();
  });
});
