/**
 * Parkmate notifications for React: a lossless WebSocket hook and the original's toasts.
 * Mount `<NotificationToaster/>` once, call `useWebSocketNotifications(userId, { token, ... })` once
 * (e.g. in the app shell), and use `notify.*` anywhere. Pages without React use
 * `mountNotificationToaster()` and `new NotificationClient(userId, { token }, onState).start()`.
 * Published as the npm package `@parkmate/notify` (packages/notify), built from this directory.
 *
 * @packageDocumentation
 */

export { useWebSocketNotifications } from './useWebSocketNotifications';
export type { UseWebSocketNotificationsOptions, UseWebSocketNotificationsResult } from './useWebSocketNotifications';
export { NotificationClient, INITIAL_STATE } from './client';
export { toastOptionsFor } from './frames';
export type {
  ConnectionStatus,
  DeliveryInfo,
  NotificationClientInit,
  NotificationClientOptions,
  NotificationState,
  WebSocketCtor,
  WebSocketLike,
} from './types';
export {
  notify,
  NotificationToaster,
  expiringToastId,
  expiredToastId,
  wasShownOnce,
  LEVEL_STYLES,
  AUTO_CLOSE_MS,
  WARNING_AUTO_CLOSE_MS,
  TOAST_LIMIT,
} from './notify';
export type { NotifyOptions, NotificationToasterProps } from './notify';
export { mountNotificationToaster } from './mount';
export { focusToasts } from './toastFocus';
export { useToastHistory, toastHistory, subscribeToastHistory, clearToastHistory, TOAST_HISTORY_LIMIT } from './toastHistory';
export type { ShownToast } from './toastHistory';
export { backoffDelay, backoffCeiling, decideClose, nextAttempt, CLOSE, DEFAULT_BACKOFF } from './reconnect';
export type { BackoffOptions, CloseDecision } from './reconnect';
export { loadLastSeen, saveLastSeen, lastSeenKey, SeenIds } from './resume';
export type { KeyValueStore } from './resume';
export { apiBaseUrl, wsBaseUrl, notificationSocketUrl, socketProtocols, SUBPROTOCOL } from './config';
export { parseServerFrame, LEVELS } from './protocol';
export type { Level, Notification, ServerFrame, ClientFrame } from './protocol';
