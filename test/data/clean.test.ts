import { describe, expect, it } from "vitest";
import { cleanCaption, decodeEntities } from "../../src/core/data/clean.js";

describe("decodeEntities", () => {
  it("decodes named, decimal and hex entities; leaves unknown ones", () => {
    expect(decodeEntities("Tom &amp; Jerry &lt;3 &quot;hi&quot; &apos;x&#39; caf&eacute;")).toBe(
      "Tom & Jerry <3 \"hi\" 'x' café",
    );
    expect(decodeEntities("&#8211; &#x2014; &#X1F3A8; &copy;&trade;&hellip;")).toBe("– — 🎨 ©™…");
    expect(decodeEntities("&bogus; & alone &amp")).toBe("&bogus; & alone &amp");
  });

  it("decodes double-encoded text once more, not forever", () => {
    expect(decodeEntities("Fish &amp;amp; Chips &amp;quot;x&amp;quot;")).toBe('Fish & Chips "x"');
    expect(decodeEntities("&amp;amp;amp;")).toBe("&amp;");
  });

  it("maps NUL, surrogates and out-of-range code points to U+FFFD", () => {
    expect(decodeEntities("&#0;&#xD800;&#x110000;")).toBe("\ufffd\ufffd\ufffd");
  });
});

describe("cleanCaption", () => {
  it("removes tags (real and entity-encoded), keeps text that only looks like < >", () => {
    expect(cleanCaption("<b>Bold</b> fox<br/>in <a href='x'>snow</a>")).toBe("Bold fox in snow");
    expect(cleanCaption("&lt;p&gt;Encoded paragraph&lt;/p&gt;")).toBe("Encoded paragraph");
    expect(cleanCaption("I <3 cats, 1 < 2 > 0")).toBe("I <3 cats, 1 < 2 > 0");
    expect(cleanCaption("a <!-- comment --> b")).toBe("a b");
  });

  it("removes control and zero-width characters, collapses whitespace, trims", () => {
    expect(cleanCaption("  a\tb\u0000c\r\n d \u0085e\u200bf\ufeff ")).toBe("a bc d ef");
    expect(cleanCaption("non&nbsp;breaking\u00a0space\u3000ideographic")).toBe(
      "non breaking space ideographic",
    );
    // Emoji joiners are part of the emoji, not control characters.
    expect(cleanCaption("family 👨\u200d👩\u200d👧")).toBe("family 👨\u200d👩\u200d👧");
  });

  it("returns an empty string for captions with nothing left", () => {
    expect(cleanCaption("")).toBe("");
    expect(cleanCaption(" \t\r\n ")).toBe("");
    expect(cleanCaption("<br><img src='x.jpg'/>&nbsp;\u0007")).toBe("");
  });
});
