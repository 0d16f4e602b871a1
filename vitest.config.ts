import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One temp folder per run, removed at the end (see the file).
    globalSetup: ["test/helpers/tmpdir.ts"],
    // ONNX sessions and fake servers make some tests slower than the 5 s default on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
