import { describe, expect, it } from "vitest";
import { botPermissions, discordInviteUrl } from "../../src/adapters/discord/invite.js";
import { runCli } from "../helpers/cli.js";

describe("discordInviteUrl", () => {
  it("asks for bot + applications.commands and exactly the channel permissions the bot uses", () => {
    const url = new URL(discordInviteUrl("123456789012345678"));
    expect(url.origin + url.pathname).toBe("https://discord.com/oauth2/authorize");
    expect(url.searchParams.get("client_id")).toBe("123456789012345678");
    expect(url.searchParams.get("scope")).toBe("bot applications.commands");
    // View Channel 1024 + Send Messages 2048 + Manage Messages 8192 + Attach Files 32768
    // + Add Reactions 64 + Read Message History 65536, from Discord's permission table.
    expect(url.searchParams.get("permissions")).toBe(
      String(1024 + 2048 + 8192 + 32768 + 64 + 65536),
    );
    expect(botPermissions()).toBe(109632n);
    expect(url.searchParams.has("guild_id")).toBe(false);
  });

  it("preselects a server when given one", () => {
    const url = new URL(discordInviteUrl("1", "42"));
    expect(url.searchParams.get("guild_id")).toBe("42");
  });
});

describe("imagine-bot register discord --invite", () => {
  it("prints the invite link from DISCORD_APPLICATION_ID alone (no token needed)", async () => {
    const { code, stdout } = await runCli(["register", "discord", "--invite", "--guild", "42"], {
      DISCORD_APPLICATION_ID: "123456789012345678",
    });
    expect(code).toBe(0);
    const url = new URL(stdout.trim());
    expect(url.searchParams.get("client_id")).toBe("123456789012345678");
    expect(url.searchParams.get("guild_id")).toBe("42");
  });

  it("exits 2 naming the variable when the application id is missing or not an id", async () => {
    const missing = await runCli(["register", "discord", "--invite"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/DISCORD_APPLICATION_ID is not set/);
    const wrong = await runCli(["register", "discord", "--invite"], {
      DISCORD_APPLICATION_ID: "my-bot",
    });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/DISCORD_APPLICATION_ID must be a Discord id/);
  });
});
