/** The one chat flow both platforms share, and the contract a platform implements. */

export { type AnyCommand, CHAT_COMMANDS, chatOptions, parseChatOptions } from "./commands.js";
export { RecentIds, type SeenEvents } from "./dedupe.js";
export { ChatFlow, type CommandReport, type ReactionReport } from "./flow.js";
export type {
  ChatPlatform,
  CommandEvent,
  Conversation,
  ImageMessage,
  PlatformName,
  PostedMessage,
  ReactionEvent,
  ResultRenderers,
} from "./platform.js";
export { ReactionsForbidden } from "./platform.js";
export type { AdapterStarter, ChatServices, RunningAdapter } from "./services.js";
