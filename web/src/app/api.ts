/**
 * The booking REST API (docs/booking-api.md) and the inbox API (docs/protocol.md), typed.
 * Every error becomes an ApiError with the server's stable `code`; a 401 on an authenticated call
 * signs the user out (see auth.tsx).
 *
 * The booking API's types come from its OpenAPI document: `web/openapi.json` is a committed copy of
 * the server's `GET /api/openapi.json` (a Rust test keeps it current) and `npm run api:types`
 * generates `src/api/schema.d.ts` from it (`npm run typecheck` fails when that file is stale). Each
 * call names its operation, so its request body and answer are checked against the document.
 * What the document does not say yet is written by hand below, each marked so.
 *
 * @packageDocumentation
 */

import { apiBaseUrl } from '@parkmate/notify';
import type { Notification } from '@parkmate/notify';
import type { components, operations } from '../api/schema';

type Schemas = components['schemas'];

/**
 * `Base` with some fields narrowed. Only fields `Base` has, each to a subtype of its type there,
 * so a narrowing can never describe a shape the document does not.
 */
type Narrow<Base, Fields extends { [K in keyof Fields]: K extends keyof Base ? Base[K] : never }> = Omit<
  Base,
  keyof Fields
> &
  Fields;

/** The JSON body of a 200 or 201 answer to an operation of the document. */
type Answer<Op extends keyof operations> = JsonContent<
  operations[Op]['responses'][Extract<keyof operations[Op]['responses'], 200 | 201>]
>;
/** The JSON request body of an operation of the document (`never` when it takes none). */
type Body<Op extends keyof operations> = JsonContent<NonNullable<operations[Op]['requestBody']>>;
type JsonContent<R> = R extends { content: { 'application/json': infer T } } ? T : never;

/**
 * Hand-written: the document types `role` as a string (`UserDto.role` is a `String` on the
 * server); these are the four roles of docs/booking-api.md.
 */
export type Role = 'user' | 'owner' | 'admin' | 'employee';
/** Hand-written: `BookingDto.status` is a string in the document; the states of docs/booking-api.md. */
export type BookingStatus = 'requested' | 'confirmed' | 'declined' | 'expired' | 'lapsed';
/** Hand-written: `payment_method` is a string in the document; `cash` or `online`. */
export type PaymentMethod = 'cash' | 'online';
/** Hand-written: a window's (and a booking's) payment status, a string in the document. */
export type PaymentStatus = 'pending' | 'paid' | 'refunded';

/** A call to the payment gateway (a window's charge or refund); `status` narrowed by hand. */
export type Payment = Narrow<
  Schemas['PaymentDto'],
  { status: 'pending' | 'succeeded' | 'failed' | 'refunded'; reference: string | null; settled_at: string | null }
>;
/** One paid period of a booking: the first, then one per renewal, each with its own payment. */
export type BookingWindow = Narrow<
  Schemas['WindowDto'],
  {
    payment_method: PaymentMethod;
    payment_status: PaymentStatus;
    cash_verified_at: string | null;
    charge: Payment | null;
    refund: Payment | null;
  }
>;

export type User = Narrow<Schemas['UserDto'], { role: Role }>;
export type Slot = Schemas['SlotDto'];
export type Lot = Schemas['LotDto'];
export type DemoAccount = Narrow<Schemas['DemoAccountDto'], { role: Role }>;
/**
 * A booking. The string enums are narrowed by hand (see {@link BookingStatus}); the nullable fields
 * are always sent (as `null`), which the document marks only as optional.
 */
export type Booking = Narrow<
  Schemas['BookingDto'],
  {
    status: BookingStatus;
    payment_method: PaymentMethod;
    payment_status: PaymentStatus;
    car_wash_status: 'pending' | 'done' | null;
    decline_reason: string | null;
    approved_at: string | null;
    lapses_at: string | null;
    windows: BookingWindow[];
  }
>;

/**
 * Hand-written: the inbox API (`GET /api/inbox`, docs/protocol.md) is served by the notifier, not
 * by the booking router, so the OpenAPI document does not cover it yet.
 */
export interface InboxPage {
  items: Notification[];
  next_before: number | null;
  unread_count: number;
}
/** Hand-written, like {@link InboxPage}: the answer of `POST /api/inbox/{id}/read` and `/read-all`. */
export interface UnreadCount {
  unread_count: number;
}

/**
 * Hand-written: the push routes (`/api/push/…`, docs/push.md) are in the server's whole document
 * (`GET /api/openapi.json`) but not in `web/openapi.json`, which is the booking router's part only.
 * Field for field the server's `push/api.rs` DTOs.
 */
export interface VapidPublicKey {
  /** base64url of the 65-byte uncompressed P-256 point: the `applicationServerKey`. */
  public_key: string;
}
/** Hand-written, like {@link VapidPublicKey}: `PushSubscription.toJSON()` as the server reads it. */
export interface PushSubscriptionBody {
  endpoint: string;
  expirationTime?: number | null;
  keys: { p256dh: string; auth: string };
}
/** Hand-written, like {@link VapidPublicKey}: one event kind's choice. */
export interface EventPreference {
  event: string;
  /** Shown live in the app (this client applies it; the inbox keeps everything). */
  in_app: boolean;
  /** Pushed when no open tab acknowledged it. */
  push: boolean;
}
/** Hand-written, like {@link VapidPublicKey}: local `HH:MM` in an IANA zone; `end` before `start` wraps. */
export interface QuietHours {
  time_zone: string;
  start: string;
  end: string;
}
/** Hand-written, like {@link VapidPublicKey}: what `PUT /api/push/preferences` takes. */
export interface Preferences {
  /** Only the kinds the person chose for; any other kind takes the default. */
  events: EventPreference[];
  quiet_hours: QuietHours | null;
}
/** Hand-written, like {@link VapidPublicKey}: what `GET`/`PUT /api/push/preferences` answer. */
export interface PreferencesAnswer extends Preferences {
  /** Kinds not pushed unless chosen (every other kind is pushed and shown by default). */
  push_off_by_default: string[];
  /** Kinds pushed at once and through quiet hours. */
  urgent: string[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let tokenProvider: () => string | null = () => null;
let onUnauthorized: () => void = () => {};

/** Wired by the AuthProvider. */
export function configureApi(getToken: () => string | null, unauthorized: () => void): void {
  tokenProvider = getToken;
  onUnauthorized = unauthorized;
}

export async function request<T>(method: string, path: string, body?: unknown, opts: { auth?: boolean } = {}): Promise<T> {
  const auth = opts.auth ?? true;
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = tokenProvider();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(`${apiBaseUrl()}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection.');
  }
  const text = await res.text();
  let json: unknown = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const err = (json ?? {}) as { code?: string; message?: string };
    if (res.status === 401 && auth) onUnauthorized();
    throw new ApiError(res.status, err.code ?? `http_${res.status}`, err.message ?? `Request failed (${res.status})`);
  }
  return json as T;
}

/**
 * One operation of the document: `Op` (its operationId) types the body, and the answer is the
 * document's unless `T` narrows it.
 */
function call<Op extends keyof operations, T extends Answer<Op> = Answer<Op>>(
  method: 'GET' | 'POST',
  path: string,
  body?: Body<Op>,
  opts?: { auth?: boolean },
): Promise<T> {
  // Every POST sends a JSON object, `{}` when the operation takes no body.
  return request<T>(method, path, method === 'POST' ? (body ?? {}) : body, opts);
}

export const api = {
  login: (email: string, password: string) =>
    call<'login', { token: string; user: User }>('POST', '/auth/login', { email, password }, { auth: false }),
  demoAccounts: () => call<'demo_accounts', { accounts: DemoAccount[] }>('GET', '/auth/demo-accounts', undefined, { auth: false }),
  me: () => call<'me', User>('GET', '/me'),
  users: (role: Role) => call<'users', { items: User[] }>('GET', `/users?role=${encodeURIComponent(role)}`),

  lots: (mine = false) => call<'lots'>('GET', mine ? '/lots?mine=true' : '/lots'),
  lot: (id: number) => call<'lot'>('GET', `/lots/${id}`),
  assignEmployee: (lotId: number, employeeId: number) =>
    call<'assign_employee'>('POST', `/lots/${lotId}/employees`, { employee_id: employeeId }),

  bookings: () => call<'bookings', { items: Booking[] }>('GET', '/bookings'),
  booking: (id: number) => call<'booking', Booking>('GET', `/bookings/${id}`),
  createBooking: (b: Narrow<Body<'create_booking'>, { payment_method: PaymentMethod }>) =>
    call<'create_booking', Booking>('POST', '/bookings', b),
  approve: (id: number) => call<'approve', Booking>('POST', `/bookings/${id}/approve`),
  decline: (id: number, reason?: string) => call<'decline', Booking>('POST', `/bookings/${id}/decline`, reason ? { reason } : {}),
  /** The cash of window `seq`, or (without it) of the oldest window not yet verified. */
  verifyCash: (id: number, seq?: number) =>
    call<'verify_cash', Booking>('POST', `/bookings/${id}/verify-cash`, seq == null ? {} : { window: seq }),
  carWashDone: (id: number) => call<'car_wash_done', Booking>('POST', `/bookings/${id}/car-wash-done`),
  renew: (id: number, r: Narrow<Body<'renew'>, { payment_method: PaymentMethod }>) =>
    call<'renew', Booking>('POST', `/bookings/${id}/renew`, r),

  // Not in the OpenAPI document yet: typed by hand (InboxPage, UnreadCount).
  inbox: (before?: number | null, limit = 20) =>
    request<InboxPage>('GET', `/inbox?limit=${limit}${before != null ? `&before=${before}` : ''}`),
  markRead: (id: number) => request<UnreadCount>('POST', `/inbox/${id}/read`, {}),
  markAllRead: () => request<UnreadCount>('POST', '/inbox/read-all', {}),

  // Not in web/openapi.json: typed by hand (VapidPublicKey and the others above).
  /** 404 `push_disabled` when the server has no VAPID key. */
  vapidPublicKey: () => request<VapidPublicKey>('GET', '/push/vapid-public-key', undefined, { auth: false }),
  /** 201 new, 200 refreshed (or moved from whoever had this browser before). */
  subscribePush: (s: PushSubscriptionBody) => request<{ id: number }>('POST', '/push/subscriptions', s),
  /** 204; 404 when the server does not have it (already gone: nothing left to do). */
  unsubscribePush: (endpoint: string) => request<null>('DELETE', '/push/subscriptions', { endpoint }),
  preferences: () => request<PreferencesAnswer>('GET', '/push/preferences'),
  setPreferences: (p: Preferences) => request<PreferencesAnswer>('PUT', '/push/preferences', p),
};

/** The built-in test payment gateway's cards (docs/booking-api.md), shown as hints. */
export const TEST_CARDS: Array<{ number: string; outcome: string }> = [
  { number: '4242424242424242', outcome: 'approved' },
  { number: '4000000000000002', outcome: 'declined: Card declined' },
  { number: '4000000000009995', outcome: 'declined: Insufficient funds' },
  { number: '4000000000000119', outcome: 'gateway error' },
];

export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
