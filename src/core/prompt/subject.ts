import { UserError } from "../errors.js";

// C0/C1 controls, DEL, and bidi overrides that can disguise text in chat clients.
// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Checks a subject as typed and returns it trimmed. Refuses, with a message safe to show the
 * person: an empty or whitespace-only subject, one longer than maxLength characters (code
 * points, so an emoji counts once), and control characters.
 */
export function validateSubject(raw: string, maxLength: number): string {
  const subject = raw.trim();
  if (subject === "") {
    throw new UserError(
      "SUBJECT_INVALID",
      'The subject is empty: say what the image should show, for example "a lighthouse".',
    );
  }
  const length = [...subject].length;
  if (length > maxLength) {
    throw new UserError(
      "SUBJECT_INVALID",
      `The subject is ${length} characters long; the limit is ${maxLength}. Shorten it and try again.`,
    );
  }
  const control = CONTROL.exec(subject);
  if (control) {
    const code = (control[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
    throw new UserError(
      "SUBJECT_INVALID",
      `The subject contains a control character (U+${code}); use plain text on one line.`,
    );
  }
  return subject;
}
