/**
 * Toasts a keyboard user can catch (WCAG 2.1.1, 2.2.1, 2.4.3), on top of react-toastify:
 *
 * - A toast is paused while the pointer is over it *or keyboard focus is in it*, and runs again when
 *   both have left. react-toastify pauses on hover only, and its Alt+T pauses every toast until
 *   Escape, even after focus has gone; here the DOM decides, after every focus, hover and key event.
 * - Escape in a toast dismisses it; Escape anywhere else that nothing else claimed (the inbox calls
 *   `preventDefault()`) dismisses the newest toast.
 * - Focus never drops to `<body>`: when the toast holding focus goes (Escape, its close button,
 *   `notify.dismiss`), focus moves to the next toast, or back to where it was before it entered the
 *   stack (a pointer user goes straight back there), or to the host's fallback.
 *
 * @packageDocumentation
 */

import { useEffect, useLayoutEffect, useRef, type RefObject } from 'react';
import { toast } from 'react-toastify';

const TOAST = '.Toastify__toast';

/** The mounted toaster's root, for `focusToasts()`; null when none is mounted. */
let toasterRoot: HTMLElement | null = null;

function liveToasts(root: ParentNode): HTMLElement[] {
  // `data-in="false"` is a toast already on its way out.
  return [...root.querySelectorAll<HTMLElement>(TOAST)].filter((t) => t.dataset.in !== 'false');
}

/** Moves keyboard focus to the newest toast (which pauses it). False when no toast is showing. */
export function focusToasts(): boolean {
  const first = toasterRoot ? liveToasts(toasterRoot)[0] : undefined;
  if (!first) return false;
  first.focus();
  return true;
}

/**
 * Wires the behaviour above to the toaster rendered inside `rootRef`. `fallback` gives the element
 * to focus when the toast that held focus goes and there is nowhere better (e.g. the page heading).
 */
export function useToastKeyboard(rootRef: RefObject<HTMLElement | null>, fallback?: () => HTMLElement | null): void {
  // In a ref, so a host passing a new arrow on every render does not re-wire the listeners.
  const fallbackRef = useRef(fallback);
  useLayoutEffect(() => {
    fallbackRef.current = fallback;
  });

  useEffect(() => {
    const root = rootRef.current;
    if (!root) return;
    toasterRoot = root;
    const hovered = new Set<string>();
    /** The last element outside the stack that had focus: where focus returns. */
    let returnTo: HTMLElement | null = document.activeElement instanceof HTMLElement && !root.contains(document.activeElement) ? document.activeElement : null;
    /** The last input was a pointer, not the keyboard: a closed toast hands focus back, not on. */
    let pointer = false;

    const toastOf = (n: EventTarget | null): HTMLElement | null => (n instanceof Element ? n.closest<HTMLElement>(TOAST) : null);

    /** Pause exactly the toasts that are hovered or hold focus; run the others. */
    const sync = () => {
      const focused = document.activeElement;
      for (const t of liveToasts(root)) {
        if (!t.id) continue;
        if (hovered.has(t.id) || t.contains(focused)) toast.pause({ id: t.id });
        else toast.play({ id: t.id });
      }
    };
    // After the event: focusout runs before focus lands, react-toastify's own handlers run after ours.
    const syncSoon = () => setTimeout(sync, 0);

    const onFocusIn = (e: FocusEvent) => {
      if (!root.contains(e.target as Node) && e.target instanceof HTMLElement) returnTo = e.target;
      syncSoon();
    };
    const onOver = (e: MouseEvent) => {
      const t = toastOf(e.target);
      if (t?.id && !hovered.has(t.id)) {
        hovered.add(t.id);
        sync();
      }
    };
    const onOut = (e: MouseEvent) => {
      const t = toastOf(e.target);
      if (t?.id && !t.contains(e.relatedTarget as Node | null)) {
        hovered.delete(t.id);
        sync();
      }
    };
    const onPointerDown = () => {
      pointer = true;
    };
    const onKeyDownCapture = (e: KeyboardEvent) => {
      pointer = false;
      // Alt+T is react-toastify's: it focuses the newest toast and pauses them all; re-sync after.
      if (e.altKey && e.code === 'KeyT') syncSoon();
    };
    // On window, bubbling: after the page's own handlers, so they can claim Escape first.
    const onKeyDown = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
      const own = toastOf(document.activeElement);
      const target = own && root.contains(own) ? own : e.defaultPrevented ? null : liveToasts(root)[0];
      if (!target?.id) return;
      e.preventDefault();
      toast.dismiss(target.id);
      syncSoon();
    };

    /**
     * The toast `id` is going: if it holds focus, hand focus on; then take it out of the Tab order
     * and the accessibility tree while it slides out (it is no longer there for anyone).
     */
    const handOff = (id: string) => {
      const all = [...root.querySelectorAll<HTMLElement>(TOAST)];
      const gone = all.find((t) => t.id === id);
      if (!gone) return;
      if (gone.contains(document.activeElement)) moveFocusFrom(gone, all);
      gone.inert = true;
    };

    const moveFocusFrom = (gone: HTMLElement, all: HTMLElement[]) => {
      const others = liveToasts(root).filter((t) => t !== gone);
      const after = others.find((t) => all.indexOf(t) > all.indexOf(gone));
      const next = pointer ? undefined : (after ?? others[others.length - 1]);
      const back = returnTo?.isConnected ? returnTo : (fallbackRef.current?.() ?? null);
      const to = next ?? back;
      if (to) to.focus({ preventScroll: pointer });
      else (document.activeElement as HTMLElement | null)?.blur();
      syncSoon();
    };

    const unsubscribe = toast.onChange((item) => {
      if (item.status === 'removed') handOff(String(item.id));
    });

    document.addEventListener('focusin', onFocusIn);
    root.addEventListener('focusout', syncSoon);
    root.addEventListener('mouseover', onOver);
    root.addEventListener('mouseout', onOut);
    // react-toastify plays a toast on pointerup (it thinks only of hover) and when its entrance
    // animation ends (a toast focused while still sliding in): decide again after each.
    root.addEventListener('pointerup', syncSoon);
    root.addEventListener('animationend', syncSoon);
    root.addEventListener('animationcancel', syncSoon);
    document.addEventListener('pointerdown', onPointerDown, true);
    document.addEventListener('keydown', onKeyDownCapture, true);
    window.addEventListener('keydown', onKeyDown);
    return () => {
      if (toasterRoot === root) toasterRoot = null;
      unsubscribe();
      document.removeEventListener('focusin', onFocusIn);
      root.removeEventListener('focusout', syncSoon);
      root.removeEventListener('mouseover', onOver);
      root.removeEventListener('mouseout', onOut);
      root.removeEventListener('pointerup', syncSoon);
      root.removeEventListener('animationend', syncSoon);
      root.removeEventListener('animationcancel', syncSoon);
      document.removeEventListener('pointerdown', onPointerDown, true);
      document.removeEventListener('keydown', onKeyDownCapture, true);
      window.removeEventListener('keydown', onKeyDown);
    };
  }, [rootRef]);
}
