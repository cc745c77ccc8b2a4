/**
 * Who is signed in. The token and the user are kept in localStorage (as the original did), so a
 * reload keeps the session; any 401 from the API signs out and sends the user to /login.
 *
 * @packageDocumentation
 */

import { createContext, useCallback, useContext, useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { api, configureApi, type User } from './api';
import { navigate } from './router';
import { notify } from '@parkmate/notify';

const TOKEN_KEY = 'parkmate.token';
const USER_KEY = 'parkmate.user';

interface AuthState {
  token: string | null;
  user: User | null;
}

interface AuthContextValue extends AuthState {
  login: (email: string, password: string) => Promise<User>;
  logout: (reason?: string) => void;
}

const AuthContext = createContext<AuthContextValue | null>(null);

function load(): AuthState {
  try {
    const token = localStorage.getItem(TOKEN_KEY);
    const raw = localStorage.getItem(USER_KEY);
    const user = raw ? (JSON.parse(raw) as User) : null;
    return token && user ? { token, user } : { token: null, user: null };
  } catch {
    return { token: null, user: null };
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<AuthState>(load);
  /** The token as the API module reads it; changed only by login and logout, with the state. */
  const tokenRef = useRef(state.token);

  const logout = useCallback((reason?: string) => {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    tokenRef.current = null;
    setState({ token: null, user: null });
    if (reason) notify.warning(reason, { toastId: 'session-expired' });
    navigate('/login', true);
  }, []);

  const login = useCallback(async (email: string, password: string) => {
    const { token, user } = await api.login(email, password);
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user));
    tokenRef.current = token;
    setState({ token, user });
    return user;
  }, []);

  // A layout effect, not a passive one: React runs the children's effects before this provider's,
  // but every layout effect of a commit before any passive effect, so the pages' first requests
  // (fired from their effects) already carry the token after a reload instead of getting 401 and
  // signing the user out.
  useLayoutEffect(() => {
    configureApi(
      () => tokenRef.current,
      () => {
        if (tokenRef.current) logout('Your session has expired. Please sign in again.');
      },
    );
  }, [logout]);

  // Refresh the stored user (name or role may have changed); a 401 here signs out via configureApi.
  useEffect(() => {
    if (!state.token) return;
    api
      .me()
      .then((user) => {
        localStorage.setItem(USER_KEY, JSON.stringify(user));
        setState((s) => (s.token ? { ...s, user } : s));
      })
      .catch(() => {});
  }, [state.token]);

  const value = useMemo(() => ({ ...state, login, logout }), [state, login, logout]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthContextValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error('useAuth outside AuthProvider');
  return v;
}

export function homeFor(role: string | undefined): string {
  switch (role) {
    case 'owner':
      return '/owner';
    case 'admin':
      return '/admin';
    case 'employee':
      return '/jobs';
    default:
      return '/lots';
  }
}
