/**
 * The survey page's own CSS and JavaScript (no third-party assets), written into every page:
 * a stylesheet fetched on its own held the first paint back by a round trip (and the script,
 * DOMContentLoaded), where 3.8 KB inline costs nothing measurable. The Content Security Policy
 * allows exactly these two by their SHA-256 and nothing else inline. The page works without
 * the script (plain forms); the script adds the keyboard shortcuts: 1–4 answers the scale that
 * has focus and moves on to the next one, then Enter goes to the next image.
 * Kept as strings so the build (tsc) ships them without a copy step.
 */
import { createHash } from "node:crypto";

const CSS = `
:root { color-scheme: light dark; --accent: #1d5fd1; --muted: #666; font-family: system-ui, sans-serif; line-height: 1.4; }
@media (prefers-color-scheme: dark) { :root { --accent: #8ab4ff; --muted: #aaa; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 0.75rem; }
main { max-width: 42rem; margin: 0 auto; }
h1 { font-size: 1.25rem; margin: 0.25rem 0 0.5rem; }
.progress { display: flex; justify-content: space-between; gap: 0.5rem; margin: 0 0 0.25rem; font-variant-numeric: tabular-nums; }
progress { width: 100%; height: 0.5rem; }
figure { margin: 0.5rem 0; }
figure img { display: block; width: 100%; height: auto; max-height: 70vh; object-fit: contain; background: #8882; border-radius: 0.25rem; }
.subject { font-size: 1.1rem; margin: 0.5rem 0; }
fieldset { border: 1px solid #8886; border-radius: 0.5rem; margin: 0.5rem 0; padding: 0.5rem 0.75rem 0.75rem; }
legend { font-weight: 600; padding: 0 0.25rem; }
.scale { display: grid; grid-template-columns: repeat(4, 1fr); gap: 0.5rem; margin-top: 0.25rem; }
.scale label { display: flex; flex-direction: column; align-items: center; gap: 0.15rem; padding: 0.5rem 0.25rem; border: 1px solid #8886; border-radius: 0.5rem; cursor: pointer; text-align: center; min-height: 3rem; }
.scale input { width: 1.25rem; height: 1.25rem; margin: 0; }
.scale label:has(input:checked) { border-color: var(--accent); outline: 2px solid var(--accent); }
.scale label:has(input:focus-visible) { outline: 3px solid var(--accent); outline-offset: 2px; }
.scale small { color: var(--muted); font-size: 0.75rem; }
.actions { display: flex; gap: 0.75rem; align-items: center; flex-wrap: wrap; margin: 0.75rem 0; }
button, .button { font: inherit; padding: 0.6rem 1.25rem; border-radius: 0.5rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; }
.button.secondary { background: transparent; color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.hint, .note { color: var(--muted); font-size: 0.85rem; }
.error { border-left: 4px solid #c62828; padding: 0.25rem 0.75rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #8884; }
.chart { max-width: 100%; height: auto; }
pre { overflow-x: auto; background: #8881; padding: 0.5rem; border-radius: 0.25rem; font-size: 0.8rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
`.trim();

const JS = `
const form = document.getElementById("answer");
if (form) {
  const groups = [...form.querySelectorAll("fieldset[data-dimension]")];
  const next = form.querySelector("button[type=submit]");
  let sent = false;
  form.addEventListener("submit", (event) => {
    // One submission per page: a second Enter while the first is on its way does nothing.
    if (sent) event.preventDefault();
    sent = true;
  });
  const focusGroup = (group) => {
    const target = group.querySelector("input:checked") || group.querySelector("input");
    target.focus();
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (!/^[1-4]$/.test(event.key)) return;
    const active = document.activeElement;
    let index = groups.findIndex((group) => group.contains(active));
    if (index === -1) index = active === next ? groups.length - 1 : 0;
    const input = groups[index].querySelector('input[value="' + event.key + '"]');
    if (!input) return;
    event.preventDefault();
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    if (index + 1 < groups.length) focusGroup(groups[index + 1]);
    else next.focus();
  });
}
`.trim();

export interface Asset {
  body: string;
  /** The CSP source that allows exactly this inline code: 'sha256-…'. */
  cspSource: string;
}

function asset(body: string): Asset {
  // Written between <style> or <script> tags: a closing tag inside would end it early.
  if (/<\/(style|script)/i.test(body)) throw new Error("inline code must not close its tag");
  return { body, cspSource: `'sha256-${createHash("sha256").update(body).digest("base64")}'` };
}

export const SURVEY_CSS = asset(CSS);
export const SURVEY_JS = asset(JS);
