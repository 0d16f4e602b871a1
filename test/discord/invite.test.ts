import { describe, expect, it } from "vitest";
import { botPermissions, discordInviteUrl } from "../../src/adapters/discord/invite.js";

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
