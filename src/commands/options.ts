/** Option fields that several commands declare the same way (adapters read their descriptions). */
import { z } from "zod";

export const subjectOption = z.string().describe('what the image should show, e.g. "a lighthouse"');

export const armOption = z.string().optional().describe("which configured arm writes the prompts");

/** Developer option (CLI only; chat adapters hide it): a model directory instead of an arm. */
export const modelDirOption = z.string().optional().describe("a model directory instead of an arm");

export function seedOption(what: string) {
  return z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional()
    .describe(`same seed, same ${what}`);
}
