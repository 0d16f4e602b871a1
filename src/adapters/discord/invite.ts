/**
 * The invite link a server admin opens to add the bot: the two OAuth2 scopes it needs and exactly
 * the channel permissions it uses, so that nobody has to work them out from Discord's developer
 * portal.
 */
import { OAuth2Scopes, PermissionFlagsBits } from "discord.js";

/** What the bot does in a channel, and the permission each needs. */
export const BOT_PERMISSIONS = {
  /** See the channels it is asked to post in. */
  ViewChannel: PermissionFlagsBits.ViewChannel,
  /** Batch-study images are ordinary messages. */
  SendMessages: PermissionFlagsBits.SendMessages,
  /** The PNG. */
  AttachFiles: PermissionFlagsBits.AttachFiles,
  /** The eight voting reactions. */
  AddReactions: PermissionFlagsBits.AddReactions,
  /** Votes on messages posted before a restart, and reconciling reactions after one. */
  ReadMessageHistory: PermissionFlagsBits.ReadMessageHistory,
  /** Removing a replaced vote's old reaction; without it the old one stays but no longer counts. */
  ManageMessages: PermissionFlagsBits.ManageMessages,
} as const;

/** bot (to join and post) and applications.commands (the slash commands). */
export const BOT_SCOPES = [OAuth2Scopes.Bot, OAuth2Scopes.ApplicationsCommands] as const;

/** The sum of BOT_PERMISSIONS, as Discord's permissions integer. */
export function botPermissions(): bigint {
  return Object.values(BOT_PERMISSIONS).reduce((sum, flag) => sum | flag, 0n);
}

/** https://discord.com/oauth2/authorize?client_id=…&scope=bot+applications.commands&permissions=… */
export function discordInviteUrl(applicationId: string, guildId?: string): string {
  const url = new URL("https://discord.com/oauth2/authorize");
  url.searchParams.set("client_id", applicationId);
  url.searchParams.set("scope", BOT_SCOPES.join(" "));
  url.searchParams.set("permissions", botPermissions().toString());
  // Preselects the server in Discord's dialog.
  if (guildId !== undefined) url.searchParams.set("guild_id", guildId);
  return url.toString();
}
