/**
 * A tiny history-API router: enough for a handful of pages, no dependency. The Rust server answers
 * unknown paths with index.html, so deep links and reloads work. After a navigation the user made,
 * focus moves to the new page's heading (WCAG 2.4.3), as a full page load would start reading there.
 *
 * @packageDocumentation
 */

import { createContext, useContext, useEffect, useRef, useState, type MouseEvent, type ReactNode } from 'react';

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

/** Focuses `el`, making it focusable from script only if it is not focusable already. */
function focusElement(el: HTMLElement): void {
  if (!el.hasAttribute('tabindex')) el.setAttribute('tabindex', '-1');
  el.focus();
}

/** The skip link's target: `#main` around the page (App.tsx), else the page's `<main>`. */
export function focusMain(): void {
  const main = document.getElementById('main') ?? document.querySelector<HTMLElement>('main');
  if (main) focusElement(main);
}

/** How long a page may take to render its heading (it may wait for data) before we give up. */
const HEADING_WAIT_MS = 10_000;

/**
 * On every path change after the user has interacted with the page, moves focus to the new page's
 * `<main> h1` as soon as it is rendered, unless the user has put focus somewhere else meanwhile.
 * A fresh load (and its redirects) leaves focus alone: the browser starts at the top by itself.
 */
export function useFocusOnNavigate(): void {
  const path = usePath();
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const activation = (navigator as Navigator & { userActivation?: { hasBeenActive: boolean } }).userActivation;
    if (activation && !activation.hasBeenActive) return;
    const before = document.activeElement;
    const untouched = () => {
      const now = document.activeElement;
      return !now || now === document.body || now === before || !now.isConnected || (before != null && !before.isConnected);
    };
    const tryFocus = () => {
      const h1 = document.querySelector<HTMLElement>('main h1');
      if (!h1) return false;
      if (untouched()) focusElement(h1);
      return true;
    };
    if (tryFocus()) return;
    const watch = new MutationObserver(() => {
      if (tryFocus()) stop();
    });
    const timer = setTimeout(() => stop(), HEADING_WAIT_MS);
    const stop = () => {
      watch.disconnect();
      clearTimeout(timer);
    };
    watch.observe(document.body, { childList: true, subtree: true });
    return stop;
  }, [path]);
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

/** `label`: the accessible name (and tooltip) when the link shows only an icon. */
export function Link(props: { to: string; children: ReactNode; className?: string; testId?: string; label?: string; onClick?: () => void }) {
  const path = usePath();
  const active = path === props.to || (props.to !== '/' && path.startsWith(props.to + '/'));
  return (
    <a
      href={props.to}
      className={`${props.className ?? ''}${active ? ' is-active' : ''}`}
      data-testid={props.testId}
      aria-label={props.label}
      title={props.label}
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
