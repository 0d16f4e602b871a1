/** The concepts a harness run uses: a file (one per line) or a comma-separated list. */
import { existsSync, readFileSync, statSync } from "node:fs";
import { UserError } from "../errors.js";
import { validateSubject } from "../safety/subject.js";

/**
 * Reads `spec` as a file of concepts when one exists at that path (blank lines and lines
 * starting with # are skipped), else as a comma-separated list. Each concept is checked like a
 * subject; duplicates are dropped, order kept.
 *
 * @example
 * readConcepts("a dog, a lighthouse", 200); // ["a dog", "a lighthouse"]
 */
export function readConcepts(spec: string, maxSubjectLength: number): string[] {
  const isFile = existsSync(spec) && statSync(spec).isFile();
  if (!isFile && /\.(txt|list|csv)$/iu.test(spec.trim())) {
    throw new UserError("USAGE", `--concepts ${spec}: no such file`);
  }
  const raw = isFile
    ? readFileSync(spec, "utf8")
        .split(/\r?\n/u)
        .filter((line) => !line.trimStart().startsWith("#"))
    : spec.split(",");
  const concepts: string[] = [];
  for (const [i, entry] of raw.entries()) {
    if (entry.trim() === "") continue;
    let concept: string;
    try {
      concept = validateSubject(entry, maxSubjectLength);
    } catch (error) {
      const where = isFile ? `${spec}, line ${i + 1}` : `concept ${i + 1}`;
      throw new UserError("USAGE", `--concepts (${where}): ${(error as Error).message}`);
    }
    if (!concepts.includes(concept)) concepts.push(concept);
  }
  if (concepts.length === 0) {
    throw new UserError(
      "USAGE",
      `--concepts ${spec}: no concepts; give a file with one per line or a list like "a dog,a lighthouse"`,
    );
  }
  return concepts;
}
