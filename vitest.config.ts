import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // ONNX sessions and fake servers make some tests slower than the 5 s default on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
