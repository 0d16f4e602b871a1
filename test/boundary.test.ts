/**
 * The dependency direction is adapters → commands → core (src/app, the composition root, opens
 * the core for the adapters). This test reads every import and fails when a layer reaches
 * outward or into a platform SDK, when the shared chat flow names a platform, or when Discord
 * and Slack import each other. biome.json's noRestrictedImports says the same to the editor.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "..", "src");
const PLATFORM_SDKS = [/^discord\.js/, /^@discordjs\//, /^@slack\//, /^ws$/];
const DISCORD_SDK = [/^discord\.js/, /^@discordjs\//];
const SLACK_SDK = [/^@slack\//];

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

function violations(layer: string, forbidden: string[], sdks = PLATFORM_SDKS): string[] {
  const found: string[] = [];
  for (const file of files(join(SRC, layer))) {
    for (const specifier of imports(file)) {
      const target = specifier.startsWith(".")
        ? relative(SRC, resolve(file, "..", specifier))
        : specifier;
      const outward = forbidden.some((other) => target.startsWith(`${other}/`));
      const sdk = sdks.some((pattern) => pattern.test(specifier));
      if (outward || sdk) found.push(`${relative(SRC, file)} imports ${specifier}`);
    }
  }
  return found;
}

describe("layer boundaries", () => {
  it("the core imports no command, adapter or platform SDK, nor the composition root", () => {
    expect(violations("core", ["commands", "adapters", "app"])).toEqual([]);
  });

  it("commands import no adapter or platform SDK", () => {
    expect(violations("commands", ["adapters", "app"])).toEqual([]);
  });

  it("the composition root imports no adapter or platform SDK", () => {
    expect(violations("app", ["adapters"])).toEqual([]);
  });

  it("the shared chat flow names no platform", () => {
    expect(violations("adapters/chat", ["adapters/discord", "adapters/slack"])).toEqual([]);
  });

  it("Discord and Slack never import each other", () => {
    expect(violations("adapters/discord", ["adapters/slack"], SLACK_SDK)).toEqual([]);
    expect(violations("adapters/slack", ["adapters/discord"], DISCORD_SDK)).toEqual([]);
  });

  it("the import reader sees imports (so the checks above can fail)", () => {
    expect(imports(join(SRC, "adapters", "cli", "serve.ts"))).toContain("../../app/index.js");
    expect(violations("adapters/cli", ["app"])).toContain(
      "adapters/cli/serve.ts imports ../../app/index.js",
    );
  });
});
