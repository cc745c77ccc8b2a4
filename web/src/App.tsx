import { AuthProvider, homeFor, useAuth } from './app/auth';
import { Header } from './app/Header';
import { LiveProvider } from './app/live';
import { match, Redirect, RouterProvider, useFocusOnNavigate, usePath } from './app/router';
import type { Role } from './app/api';
import { NotificationToaster } from '@parkmate/notify';
import { AdminDashboardPage } from './pages/AdminDashboard';
import { BookingPage } from './pages/BookingPage';
import { DriverLotsPage } from './pages/DriverLots';
import { EmployeeJobsPage } from './pages/EmployeeJobs';
import { LoginPage } from './pages/Login';
import { MyBookingsPage } from './pages/MyBookings';
import { OwnerDashboardPage } from './pages/OwnerDashboard';
import { SettingsPage } from './pages/Settings';
import { useServiceWorkerNavigation } from './app/push';

function Routes() {
  const path = usePath();
  const { user } = useAuth();
  useFocusOnNavigate();

  if (!user) return path === '/login' ? <LoginPage /> : <Redirect to="/login" />;
  if (path === '/login' || path === '/') return <Redirect to={homeFor(user.role)} />;

  const only = (roles: Role[], el: React.ReactElement) => (roles.includes(user.role) ? el : <Redirect to={homeFor(user.role)} />);

  if (path === '/lots') return only(['user'], <DriverLotsPage />);
  if (path === '/bookings') return only(['user'], <MyBookingsPage />);
  const m = match('/bookings/:id', path);
  if (m && /^\d+$/.test(m.id)) return only(['user'], <BookingPage key={m.id} id={Number(m.id)} />);
  if (path === '/owner') return only(['owner'], <OwnerDashboardPage />);
  if (path === '/admin') return only(['admin'], <AdminDashboardPage />);
  if (path === '/jobs') return only(['employee'], <EmployeeJobsPage />);
  if (path === '/settings') return <SettingsPage />;
  return (
    <main className="page" data-testid="not-found">
      <h1>Page not found</h1>
      <p className="muted">
        <a href={homeFor(user.role)}>Go home</a>
      </p>
    </main>
  );
}

/** When the toast holding focus closes and focus has nowhere better to go: the page's heading. */
function pageHeading(): HTMLElement | null {
  return document.querySelector<HTMLElement>('main h1') ?? document.querySelector<HTMLElement>('main');
}

/**
 * On narrow screens the stack sits at the bottom and the open inbox must end above it: publish the
 * space it takes (viewport bottom to the stack's top) for styles.css.
 */
function publishToastSpace(box: DOMRectReadOnly | null): void {
  const space = box ? Math.max(0, Math.ceil(window.innerHeight - box.top)) : 0;
  document.documentElement.style.setProperty('--toasts-space', `${space}px`);
}

export function App() {
  useServiceWorkerNavigation();
  return (
    <RouterProvider>
      <AuthProvider>
        <LiveProvider>
          <div className="app">
            <Header />
            {/* Right after the header: in the Tab order the toasts follow the bell and log out. */}
            <NotificationToaster hint="Also in your inbox" focusFallback={pageHeading} onStackBox={publishToastSpace} />
            {/* The skip link's target (router.tsx focusMain). */}
            <div id="main" tabIndex={-1}>
              <Routes />
            </div>
          </div>
        </LiveProvider>
      </AuthProvider>
    </RouterProvider>
  );
}
