/**
 * The dependency direction is adapters → commands → core. This test reads every import in
 * src/core and src/commands and fails when a layer reaches outward or into a platform SDK.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "..", "src");
const PLATFORM_SDKS = [/^discord\.js/, /^@discordjs\//, /^@slack\//, /^ws$/];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? files(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  );
}

function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [
    ...text.matchAll(
      /(?:^|\n)\s*(?:import|export)[^"'`;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g,
    ),
  ].map((m) => (m[1] ?? m[2]) as string);
}

function violations(layer: string, forbidden: string[]): string[] {
  const found: string[] = [];
  for (const file of files(join(SRC, layer))) {
    for (const specifier of imports(file)) {
      const target = specifier.startsWith(".")
        ? relative(SRC, resolve(file, "..", specifier))
        : specifier;
      const outward = forbidden.some((other) => target.startsWith(`${other}/`));
      const sdk = PLATFORM_SDKS.some((pattern) => pattern.test(specifier));
      if (outward || sdk) found.push(`${relative(SRC, file)} imports ${specifier}`);
    }
  }
  return found;
}

describe("layer boundaries", () => {
  it("the core imports no command, adapter or platform SDK", () => {
    expect(violations("core", ["commands", "adapters"])).toEqual([]);
  });

  it("commands import no adapter or platform SDK", () => {
    expect(violations("commands", ["adapters"])).toEqual([]);
  });

  it("the import reader sees imports (so the checks above can fail)", () => {
    expect(imports(join(SRC, "adapters", "cli", "context.ts"))).toContain("../../core/config.js");
  });
});
