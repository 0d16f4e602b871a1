/**
 * Server-rendered pages. Everything interpolated goes through `escape`; nothing about arms,
 * prompts or models is ever rendered on a rater's page (the item id, subject and position are
 * all it knows).
 */
import { DIMENSIONS, type Dimension } from "../../core/types.js";
import { SURVEY_CSS, SURVEY_JS } from "./assets.js";
import type { Answers } from "./survey.js";

/** The two questions and their 1–4 anchors, as raters see them. */
export const QUESTIONS: Record<Dimension, { legend: string; anchors: readonly string[] }> = {
  quality: {
    legend: "Image quality: how good is this image?",
    anchors: ["poor", "fair", "good", "excellent"],
  },
  faithfulness: {
    legend: "Faithfulness: how well does the image show the subject?",
    anchors: ["not at all", "a little", "mostly", "completely"],
  },
};

export function escapeHtml(text: string | number): string {
  return String(text)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

export function page(title: string, body: string, options: { script?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)}</title>
<style>${SURVEY_CSS.body}</style>
</head>
<body>
<main>
${body}
</main>
${options.script ? `<script type="module">${SURVEY_JS.body}</script>\n` : ""}</body>
</html>
`;
}

export function messagePage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}

export interface ItemPageView {
  base: string;
  position: number;
  total: number;
  answered: number;
  subject: string;
  ready: boolean;
  answers: Answers;
  csrf: string;
  closed: boolean;
  /** The image's size in pixels: the page reserves its box before the image arrives. */
  image?: { width: number; height: number };
  error?: string;
}

export function itemPage(view: ItemPageView): string {
  const { base, position, total } = view;
  const progress = `<p class="progress" id="progress"><span>Image <strong>${position}</strong> / ${total}</span><span>${view.answered} of ${total} answered</span></p>
<progress max="${total}" value="${view.answered}" aria-labelledby="progress"></progress>`;
  const previous =
    position > 1
      ? `<a class="button secondary" href="${base}/${position - 1}" rel="prev">Previous image</a>`
      : "";
  const skip =
    position < total
      ? `<a class="button secondary" href="${base}/${position + 1}" rel="next">Next image</a>`
      : `<a class="button secondary" href="${base}/done">Finish</a>`;
  if (!view.ready) {
    return page(
      `Image ${position} of ${total} (not ready)`,
      `${progress}
<h1>Image ${position} is not ready yet</h1>
<p>It has not been made yet. Come back later, or go on with the others.</p>
<p class="actions">${skip} ${previous}</p>`,
    );
  }
  const fieldsets = DIMENSIONS.map((dimension, d) => {
    const question = QUESTIONS[dimension];
    const options = question.anchors
      .map((anchor, i) => {
        const score = i + 1;
        const checked = view.answers[dimension] === score ? " checked" : "";
        const autofocus =
          d === 0 && (view.answers[dimension] === undefined ? score === 1 : checked !== "")
            ? " autofocus"
            : "";
        return `<label><input type="radio" name="${dimension}" value="${score}" required${checked}${autofocus}${view.closed ? " disabled" : ""}><span>${score}</span><small>${escapeHtml(anchor)}</small></label>`;
      })
      .join("\n");
    return `<fieldset data-dimension="${dimension}">
<legend>${escapeHtml(question.legend)}</legend>
<div class="scale">
${options}
</div>
</fieldset>`;
  }).join("\n");
  const error = view.error ? `<p class="error" role="alert">${escapeHtml(view.error)}</p>\n` : "";
  const closed = view.closed
    ? `<p class="error" role="status">This study is closed: answers can no longer change.</p>\n`
    : "";
  return page(
    `Image ${position} of ${total}`,
    `${progress}
<h1 class="visually-hidden">Image ${position} of ${total}</h1>
${error}${closed}<form method="post" action="${base}/${position}" id="answer">
<input type="hidden" name="csrf" value="${escapeHtml(view.csrf)}">
<figure>
<img src="${base}/${position}/image"${view.image ? ` width="${view.image.width}" height="${view.image.height}"` : ""} alt="Image ${position} of ${total}, made for the subject: ${escapeHtml(view.subject)}">
<figcaption class="subject">Subject: <strong>${escapeHtml(view.subject)}</strong></figcaption>
</figure>
${fieldsets}
<p class="actions">${view.closed ? skip : `<button type="submit">${position < total ? "Save and next" : "Save and finish"}</button>`} ${previous}</p>
</form>
<p class="hint">Keyboard: press 1–4 for image quality, then 1–4 for faithfulness, then Enter. Tab and the arrow keys work too.</p>`,
    { script: !view.closed },
  );
}

export function donePage(base: string, total: number, answered: number, missing: number[]): string {
  const rest =
    missing.length === 0
      ? `<p>You have answered all ${total} images. Thank you!</p>`
      : `<p>You have answered ${answered} of ${total} images. Still open: ${missing
          .map((n) => `<a href="${base}/${n}">image ${n}</a>`)
          .join(", ")}.</p>`;
  return page(
    "Survey finished",
    `<h1>Thank you</h1>
${rest}
<p>You can still <a href="${base}/1">go back and change an answer</a> until the study closes.</p>`,
  );
}
