import { useEffect, useRef, useState } from 'react';
import { Bell, Car, LogOut, RefreshCw, Settings, Wifi, WifiOff } from 'lucide-react';
import { focusToasts } from '@parkmate/notify';
import { useAuth } from './auth';
import { useLive } from './live';
import { focusMain, Link } from './router';
import { InboxPanel } from './InboxPanel';
import { forgetPushOnSignOut } from './push';
import type { Role } from './api';

const NAV: Record<Role, Array<{ to: string; label: string; testId: string }>> = {
  user: [
    { to: '/lots', label: 'Find parking', testId: 'nav-lots' },
    { to: '/bookings', label: 'My bookings', testId: 'nav-bookings' },
  ],
  owner: [{ to: '/owner', label: 'My lots', testId: 'nav-owner' }],
  admin: [{ to: '/admin', label: 'Admin', testId: 'nav-admin' }],
  employee: [{ to: '/jobs', label: 'Car-wash jobs', testId: 'nav-jobs' }],
};

export function ConnectionStatus() {
  const { status, retryInSeconds, reconnect } = useLive();
  let label: string;
  switch (status) {
    case 'open':
      label = 'Connected';
      break;
    case 'connecting':
      label = 'Connecting…';
      break;
    case 'reconnecting':
      label = retryInSeconds && retryInSeconds > 0 ? `Reconnecting in ${retryInSeconds} s` : 'Reconnecting…';
      break;
    case 'unauthorized':
      label = 'Signed out';
      break;
    default:
      label = 'Offline';
  }
  const Icon = status === 'open' ? Wifi : WifiOff;
  return (
    <span className={`conn conn--${status}`} data-testid="connection-status" data-status={status} role="status" aria-live="polite">
      <Icon size={14} aria-hidden />
      <span className="conn__label">{label}</span>
      {status === 'reconnecting' && (
        <button type="button" className="conn__retry" onClick={reconnect} data-testid="connection-retry" title="Retry now">
          <RefreshCw size={12} aria-hidden />
          <span className="sr-only">Retry now</span>
        </button>
      )}
    </span>
  );
}

/**
 * The first Tab stops of every signed-in page, shown when focused: past the header (and the toasts
 * after it) to the page, and to the notifications, which is where Alt+T is said on screen.
 */
function SkipLinks() {
  return (
    <div className="skip-links">
      <a
        href="#main"
        className="skip-link"
        data-testid="skip-to-main"
        onClick={(e) => {
          e.preventDefault(); // no history entry, and focus lands even where the hash would not move it
          focusMain();
        }}
      >
        Skip to main content
      </a>
      {/* Always there (it may hold focus when the last toast goes): with no toast, to the bell. */}
      <button
        type="button"
        className="skip-link"
        data-testid="skip-to-toasts"
        onClick={() => focusToasts() || document.querySelector<HTMLElement>('[data-testid="bell"]')?.focus()}
      >
        Notifications (Alt+T)
      </button>
    </div>
  );
}

function BellButton() {
  const { unreadCount } = useLive();
  const [open, setOpen] = useState(false);
  const wrap = useRef<HTMLDivElement>(null);
  const bell = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (!open) return;
    const onDown = (e: globalThis.MouseEvent) => {
      if (wrap.current && !wrap.current.contains(e.target as Node)) setOpen(false);
    };
    // Escape closes the inbox when focus is in it (or nowhere), and focus goes back to the bell;
    // claimed with preventDefault so the toasts' "Escape dismisses the newest" leaves it alone.
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape') return;
      const at = document.activeElement;
      if (at && at !== document.body && !wrap.current?.contains(at)) return;
      e.preventDefault();
      setOpen(false);
      bell.current?.focus();
    };
    document.addEventListener('mousedown', onDown);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('mousedown', onDown);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);

  return (
    <div className="bell-wrap" ref={wrap}>
      <button
        ref={bell}
        type="button"
        className="icon-btn bell"
        data-testid="bell"
        aria-haspopup="dialog"
        aria-expanded={open}
        aria-label={`Notifications, ${unreadCount} unread`}
        onClick={() => setOpen((o) => !o)}
      >
        <Bell size={20} aria-hidden />
        {unreadCount > 0 && (
          <span className="badge" data-testid="unread-badge">
            {unreadCount > 99 ? '99+' : unreadCount}
          </span>
        )}
      </button>
      {open && <InboxPanel onClose={() => setOpen(false)} />}
    </div>
  );
}

export function Header() {
  const { user, logout } = useAuth();
  if (!user) return null;
  return (
    <header className="topbar">
      <SkipLinks />
      <div className="topbar__row">
        <Link to="/" className="brand" testId="brand">
          <Car size={22} aria-hidden /> <span>Parkmate</span>
        </Link>
        <nav className="nav nav--wide" aria-label="Main">
          {NAV[user.role]?.map((n) => (
            <Link key={n.to} to={n.to} className="nav__link" testId={n.testId}>
              {n.label}
            </Link>
          ))}
        </nav>
        <div className="topbar__right">
          <ConnectionStatus />
          <BellButton />
          <Link to="/settings" className="icon-btn" testId="nav-settings" label="Notification settings">
            <Settings size={18} aria-hidden />
          </Link>
          <span className="user-chip" data-testid="current-user" data-role={user.role} title={user.email}>
            {user.name}
          </span>
          <button
            type="button"
            className="icon-btn"
            onClick={() => void forgetPushOnSignOut().then(() => logout())}
            data-testid="logout"
            aria-label="Log out"
            title="Log out"
          >
            <LogOut size={18} aria-hidden />
          </button>
        </div>
      </div>
      <nav className="nav nav--narrow" aria-label="Main (mobile)">
        {NAV[user.role]?.map((n) => (
          <Link key={n.to} to={n.to} className="nav__link">
            {n.label}
          </Link>
        ))}
      </nav>
    </header>
  );
}
