/**
 * The booking REST API (docs/booking-api.md) and the inbox API (docs/protocol.md), typed.
 * Every error becomes an ApiError with the server's stable `code`; a 401 on an authenticated call
 * signs the user out (see auth.tsx).
 *
 * @packageDocumentation
 */

import { apiBaseUrl } from '../notifications';
import type { Notification } from '../notifications';

export type Role = 'user' | 'owner' | 'admin' | 'employee';
export interface User {
  id: number;
  name: string;
  email: string;
  role: Role;
}
export interface Slot {
  id: number;
  number: number;
  car_wash: boolean;
  occupied: boolean;
}
export interface Lot {
  id: number;
  owner_id: number;
  owner_name: string;
  name: string;
  price_per_hour_cents: number;
  employees: Array<{ id: number; name: string }>;
  slots: Slot[];
}
export type BookingStatus = 'requested' | 'confirmed' | 'declined' | 'expired';
export interface Booking {
  id: number;
  user_id: number;
  user_name: string;
  lot_id: number;
  lot_name: string;
  slot_id: number;
  slot_number: number;
  start_at: string;
  end_at: string;
  status: BookingStatus;
  payment_method: 'cash' | 'online';
  payment_status: 'pending' | 'paid';
  amount_cents: number;
  car_wash: boolean;
  car_wash_status: 'pending' | 'done' | null;
  decline_reason: string | null;
}
export interface DemoAccount {
  name: string;
  email: string;
  password: string;
  role: Role;
}
export interface InboxPage {
  items: Notification[];
  next_before: number | null;
  unread_count: number;
}
export type PaymentMethod = 'cash' | 'online';

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

const get = <T,>(p: string) => request<T>('GET', p);
const post = <T,>(p: string, body?: unknown) => request<T>('POST', p, body ?? {});

export const api = {
  login: (email: string, password: string) =>
    request<{ token: string; user: User }>('POST', '/auth/login', { email, password }, { auth: false }),
  demoAccounts: () => request<{ accounts: DemoAccount[] }>('GET', '/auth/demo-accounts', undefined, { auth: false }),
  me: () => get<User>('/me'),
  users: (role: Role) => get<{ items: User[] }>(`/users?role=${encodeURIComponent(role)}`),

  lots: (mine = false) => get<{ items: Lot[] }>(mine ? '/lots?mine=true' : '/lots'),
  lot: (id: number) => get<Lot>(`/lots/${id}`),
  assignEmployee: (lotId: number, employeeId: number) => post<Lot>(`/lots/${lotId}/employees`, { employee_id: employeeId }),

  bookings: () => get<{ items: Booking[] }>('/bookings'),
  booking: (id: number) => get<Booking>(`/bookings/${id}`),
  createBooking: (b: {
    slot_id: number;
    duration_minutes: number;
    car_wash: boolean;
    payment_method: PaymentMethod;
    card_number?: string;
  }) => post<Booking>('/bookings', b),
  approve: (id: number) => post<Booking>(`/bookings/${id}/approve`),
  decline: (id: number, reason?: string) => post<Booking>(`/bookings/${id}/decline`, reason ? { reason } : {}),
  verifyCash: (id: number) => post<Booking>(`/bookings/${id}/verify-cash`),
  carWashDone: (id: number) => post<Booking>(`/bookings/${id}/car-wash-done`),
  renew: (id: number, r: { duration_minutes: number; payment_method: PaymentMethod; card_number?: string }) =>
    post<Booking>(`/bookings/${id}/renew`, r),

  inbox: (before?: number | null, limit = 20) =>
    get<InboxPage>(`/inbox?limit=${limit}${before != null ? `&before=${before}` : ''}`),
  markRead: (id: number) => post<{ unread_count: number }>(`/inbox/${id}/read`),
  markAllRead: () => post<{ unread_count: number }>('/inbox/read-all'),
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
