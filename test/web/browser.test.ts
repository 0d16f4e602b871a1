/**
 * The survey in a real browser: Playwright (playwright-core) driving Debian's Chromium,
 * headless, against the server on 127.0.0.1. Needs the `chromium` apt package (or
 * IMAGINE_CHROMIUM=/path/to/chromium). Screenshots of each page go to this test's temp folder,
 * and also to IMAGINE_WEB_SCREENSHOTS when set (the README's come from `IMAGINE_WEB_SCREENSHOTS=docs/web`).
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CommandContext } from "../../src/commands/command.js";
import { studyCommand } from "../../src/commands/study.js";
import type { VoteEvent } from "../../src/core/types.js";
import { type WebFixture, webFixture } from "./fixture.js";

const CHROMIUM = process.env.IMAGINE_CHROMIUM ?? "/usr/bin/chromium";

let browser: Browser;
let fixture: WebFixture;
let shots: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install Debian's (apt-get install -y chromium) or set IMAGINE_CHROMIUM`,
    );
  }
  shots = await mkdtemp(join(tmpdir(), "web-screens-"));
  fixture = await webFixture({ surveys: 2 }); // 5 concepts × 2 prompts × 2 arms: 10 per survey
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container has no user namespace for Chromium's sandbox.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
});

afterAll(async () => {
  await browser?.close();
  await fixture?.close();
  if (shots) await rm(shots, { recursive: true, force: true });
});

async function screenshot(page: Page, name: string): Promise<void> {
  const file = join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const keep = process.env.IMAGINE_WEB_SCREENSHOTS;
  if (keep) {
    await mkdir(resolve(keep), { recursive: true });
    await copyFile(file, join(resolve(keep), `${name}.png`));
  }
}

/** Answers the current image with the keyboard only: quality, faithfulness, Enter. */
async function answerWithKeys(page: Page, quality: number, faithfulness: number, next: string) {
  await page.keyboard.press(String(quality));
  await page.keyboard.press(String(faithfulness));
  await Promise.all([page.waitForURL(next), page.keyboard.press("Enter")]);
}

async function webEvents(): Promise<VoteEvent[]> {
  const all: VoteEvent[] = [];
  for await (const event of fixture.votes.events()) all.push(event);
  return all;
}

describe("web survey in Chromium", () => {
  it("a rater answers 10 images by keyboard, reloads and resumes, and changes an earlier answer", async () => {
    expect(fixture.surveySize).toBe(10);
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    const link = `${fixture.server.url}${fixture.raterPath("alice")}`;
    await page.goto(link);
    expect(page.url()).toBe(`${link}/1`);
    // The first scale has focus from the start: no mouse, no Tab needed.
    expect(await page.evaluate("document.activeElement.name")).toBe("quality");
    const paint = Number(
      await page.evaluate(
        'performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1',
      ),
    );
    process.stdout.write(`survey page first contentful paint: ${Math.round(paint)} ms\n`);
    // Phone width: nothing wider than the screen, the image loaded and decoded.
    expect(Number(await page.evaluate("document.documentElement.scrollWidth"))).toBeLessThanOrEqual(
      390,
    );
    expect(
      await page
        .locator("figure img")
        .evaluate((img: { naturalWidth: number }) => img.naturalWidth),
    ).toBe(32);
    // Every radio is labelled, and each scale is a named group.
    expect(await page.getByRole("group", { name: /Image quality/ }).count()).toBe(1);
    expect(await page.getByRole("radio", { name: /4 excellent/ }).count()).toBe(1);
    await screenshot(page, "survey-phone");

    const scores = (n: number) => [((n * 3) % 4) + 1, ((n * 5 + 1) % 4) + 1] as const;
    for (let n = 1; n <= 5; n++) {
      const [q, f] = scores(n);
      await answerWithKeys(page, q, f, `${link}/${n + 1}`);
    }
    // Halfway: reload, then open the link afresh; both land on image 6.
    await page.reload();
    expect(page.url()).toBe(`${link}/6`);
    await page.goto(link);
    expect(page.url()).toBe(`${link}/6`);
    expect(await page.locator("#progress").textContent()).toMatch(
      /Image 6 \/ 10\s*5 of 10 answered/,
    );

    // Back to image 5 with the keyboard: Tab past both scales and the save button to "Previous".
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Previous image");
    await Promise.all([page.waitForURL(`${link}/5`), page.keyboard.press("Enter")]);
    const [q5, f5] = scores(5);
    expect(await page.locator(`input[name=quality][value="${q5}"]`).isChecked()).toBe(true);
    expect(await page.locator(`input[name=faithfulness][value="${f5}"]`).isChecked()).toBe(true);
    const changedQuality = (q5 % 4) + 1;
    await answerWithKeys(page, changedQuality, f5, `${link}/6`);

    for (let n = 6; n <= 10; n++) {
      const [q, f] = scores(n);
      await answerWithKeys(page, q, f, n < 10 ? `${link}/${n + 1}` : `${link}/done`);
    }
    expect(await page.locator("main").textContent()).toContain("You have answered all 10 images");
    await screenshot(page, "survey-done");
    expect(problems).toEqual([]);

    const events = await webEvents();
    // 10 images × 2 dimensions, plus the one change (quality of image 5) — nothing twice.
    expect(events).toHaveLength(21);
    expect(events.every((e) => e.rater === "web:alice" && e.source === "web")).toBe(true);
    const replaced = events.filter((e) => e.kind === "replace");
    expect(replaced.map((e) => [e.dimension, e.previous, e.score])).toEqual([
      ["quality", q5, changedQuality],
    ]);

    // A desktop screenshot of an answered image.
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(`${link}/3`);
    await screenshot(page, "survey-desktop");
    await context.close();
  });

  it("a tampered link gets the 403 page in the browser and records nothing", async () => {
    const before = (await webEvents()).length;
    const page = await browser.newPage();
    const link = fixture.raterPath("mallory");
    const tampered = `${link.slice(0, -3)}${link.endsWith("AAA") ? "BBB" : "AAA"}`;
    const response = await page.goto(`${fixture.server.url}${tampered}/1`);
    expect(response?.status()).toBe(403);
    expect(await page.locator("h1").textContent()).toBe("Link not valid");
    await page.close();
    expect((await webEvents()).length).toBe(before);
  });

  it("the results page shows exactly what study results --format json prints", async () => {
    await fixture.studies.stop(fixture.studyId);
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(`${fixture.server.url}${fixture.adminPath()}`);
    expect(await page.locator("#study-status").textContent()).toBe("closed");
    const cli = await studyCommand.execute(
      { studies: fixture.studies, votes: fixture.votes } as unknown as CommandContext,
      { action: "results", study: fixture.studyId, format: "json", chart: false },
    );
    expect(await page.locator("#results-json").textContent()).toBe(cli.text);
    expect(
      await page.locator("img.chart").evaluate((img: { naturalWidth: number }) => img.naturalWidth),
    ).toBe(800);
    await screenshot(page, "results");
    await page.close();
  });
});
