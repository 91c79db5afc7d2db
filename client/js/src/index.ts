/**
 * @pushd/client: the browser and Node client of pushd (docs/SDK.md, docs/PROTOCOL.md).
 * @packageDocumentation
 */
export { PushdClient } from "./client.js";
export type { ClientEvents, ClientOptions, ClientState, DisconnectEvent, HelloEvent, StateEvent, UrlOption } from "./client.js";
export { Subscription } from "./subscription.js";
export type {
  JoinOptions,
  PresenceChange,
  PresenceDiff,
  PresenceLeave,
  PresenceMember,
  PresencePage,
  PresenceStats,
  SubscribedEvent,
  SubscriptionEvents,
  SubscriptionState,
} from "./subscription.js";
export type { Push } from "./push.js";
export { PushdError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { backoffDelay, closeAction, parseReason, reasonNode } from "./policy.js";
export type { BackoffOptions, CloseAction } from "./policy.js";
export { tokenExpiry } from "./jwt.js";
export type { HeartbeatMode, Transport, TransportFactory, TransportHandlers, TransportName, WebSocketConstructor, WebSocketLike } from "./transport.js";
export type { EventSourceConstructor, EventSourceLike } from "./http.js";
export type { StorageLike } from "./memory.js";
export type { WindowLike } from "./environment.js";
export type { Listener } from "./emitter.js";
