import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/core/config.js";
import { ConfigError } from "../../src/core/errors.js";
import { createImageBackend } from "../../src/core/image/registry.js";
import { imageConfig } from "./config.js";

const WORKFLOW = join(PACKAGE_ROOT, "config", "comfyui-txt2img.json");

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("createImageBackend", () => {
  it("says exactly what to set when no backend is configured", () => {
    const error = configError(() => createImageBackend(imageConfig({ backend: null }), {}));
    expect(error.code).toBe("CONFIG_INVALID");
    for (const variable of ["IMAGE_BACKEND=huggingface", "HF_TOKEN", "A1111_URL", "COMFYUI_URL"]) {
      expect(error.message).toContain(variable);
    }
  });

  it("without IMAGE_BACKEND, picks the backend whose settings are there", async () => {
    const a1111 = createImageBackend(
      imageConfig({ backend: null, automatic1111: { url: "http://127.0.0.1:7860" } }),
      {},
    );
    const comfy = createImageBackend(
      imageConfig({
        backend: null,
        comfyui: { url: "http://127.0.0.1:8188", workflowFile: WORKFLOW },
      }),
      {},
    );
    const hub = createImageBackend(imageConfig({ backend: null }), { hfToken: "hf_x" });
    expect([a1111.name, comfy.name, hub.name]).toEqual(["automatic1111", "comfyui", "huggingface"]);
    await Promise.all([a1111.close(), comfy.close(), hub.close()]);
    const both = configError(() =>
      createImageBackend(
        imageConfig({
          backend: null,
          automatic1111: { url: "http://127.0.0.1:7860" },
          comfyui: { url: "http://127.0.0.1:8188", workflowFile: WORKFLOW },
        }),
        {},
      ),
    );
    expect(both.message).toMatch(/IMAGE_BACKEND=automatic1111 or IMAGE_BACKEND=comfyui/);
  });

  it("names the variable a chosen backend is missing", () => {
    expect(
      configError(() => createImageBackend(imageConfig({ backend: "huggingface" }), {})).message,
    ).toMatch(/HF_TOKEN/);
    expect(
      configError(() => createImageBackend(imageConfig({ backend: "automatic1111" }), {})).message,
    ).toMatch(/A1111_URL/);
    expect(
      configError(() =>
        createImageBackend(
          imageConfig({ backend: "comfyui", comfyui: { workflowFile: WORKFLOW } }),
          {},
        ),
      ).message,
    ).toMatch(/COMFYUI_URL/);
  });

  it("names the workflow file when it is missing", () => {
    const missing = join(PACKAGE_ROOT, "config", "no-such-workflow.json");
    const error = configError(() =>
      createImageBackend(
        imageConfig({
          backend: "comfyui",
          comfyui: { url: "http://127.0.0.1:8188", workflowFile: missing },
        }),
        {},
      ),
    );
    expect(error.message).toContain(missing);
    expect(error.message).toContain("image.comfyui.workflowFile");
  });

  it("builds each backend under its registry name", async () => {
    const backends = [
      createImageBackend(imageConfig({ backend: "huggingface" }), { hfToken: "hf_x" }),
      createImageBackend(
        imageConfig({ backend: "automatic1111", automatic1111: { url: "http://127.0.0.1:7860" } }),
        {},
      ),
      createImageBackend(
        imageConfig({
          backend: "comfyui",
          comfyui: { url: "http://127.0.0.1:8188", workflowFile: WORKFLOW },
        }),
        {},
      ),
    ];
    expect(backends.map((backend) => backend.name)).toEqual([
      "huggingface",
      "automatic1111",
      "comfyui",
    ]);
    await Promise.all(backends.map((backend) => backend.close()));
  });
});
