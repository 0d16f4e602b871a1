import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, testProcessEnv } from "./helpers/cli.js";

describe("imagine-bot output into a closed pipe", () => {
  it("ends quietly with exit 0 when the reader goes away (… | head -2)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "imagine-pipe-"));
    try {
      const input = join(dir, "big.txt");
      await writeFile(input, `${"a lighthouse on a cliff\n".repeat(200_000)}`);
      const child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          join(ROOT, "src/adapters/cli/main.ts"),
          "safety",
          "check",
          "--input",
          input,
        ],
        { cwd: ROOT, env: { ...testProcessEnv(), IMAGINE_LOG_LEVEL: "silent" } },
      );
      let stderr = "";
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      // Like head: take the first chunk, then close the read end.
      child.stdout.once("data", () => child.stdout.destroy());
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      expect(stderr).toBe("");
      expect(code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
