/**
 * A tiny history-API router: enough for a handful of pages, no dependency. The Rust server answers
 * unknown paths with index.html, so deep links and reloads work.
 *
 * @packageDocumentation
 */

import { createContext, useContext, useEffect, useState, type MouseEvent, type ReactNode } from 'react';

const RouteContext = createContext<string>('/');

export function navigate(to: string, replace = false): void {
  if (to === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function RouterProvider({ children }: { children: ReactNode }) {
  const [path, setPath] = useState(() => window.location.pathname);
  useEffect(() => {
    const on = () => setPath(window.location.pathname);
    window.addEventListener('popstate', on);
    // Children's effects run before ours: a <Redirect> on the first render navigated before this
    // listener existed, so pick up the current location now.
    on();
    return () => window.removeEventListener('popstate', on);
  }, []);
  return <RouteContext.Provider value={path}>{children}</RouteContext.Provider>;
}

export function usePath(): string {
  return useContext(RouteContext);
}

/** Matches `/bookings/:id` style patterns; returns the params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) params[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return params;
}

export function Link(props: { to: string; children: ReactNode; className?: string; testId?: string; onClick?: () => void }) {
  const path = usePath();
  const active = path === props.to || (props.to !== '/' && path.startsWith(props.to + '/'));
  return (
    <a
      href={props.to}
      className={`${props.className ?? ''}${active ? ' is-active' : ''}`}
      data-testid={props.testId}
      aria-current={active ? 'page' : undefined}
      onClick={(e: MouseEvent) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        props.onClick?.();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

export function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, true), [to]);
  return null;
}
