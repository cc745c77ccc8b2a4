import { AuthProvider, homeFor, useAuth } from './app/auth';
import { Header } from './app/Header';
import { LiveProvider } from './app/live';
import { match, Redirect, RouterProvider, usePath } from './app/router';
import type { Role } from './app/api';
import { NotificationToaster } from './notifications';
import { AdminDashboardPage } from './pages/AdminDashboard';
import { BookingPage } from './pages/BookingPage';
import { DriverLotsPage } from './pages/DriverLots';
import { EmployeeJobsPage } from './pages/EmployeeJobs';
import { LoginPage } from './pages/Login';
import { MyBookingsPage } from './pages/MyBookings';
import { OwnerDashboardPage } from './pages/OwnerDashboard';

function Routes() {
  const path = usePath();
  const { user } = useAuth();

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
  return (
    <main className="page" data-testid="not-found">
      <h1>Page not found</h1>
      <p className="muted">
        <a href={homeFor(user.role)}>Go home</a>
      </p>
    </main>
  );
}

export function App() {
  return (
    <RouterProvider>
      <AuthProvider>
        <LiveProvider>
          <div className="app">
            <Header />
            <Routes />
          </div>
          <NotificationToaster />
        </LiveProvider>
      </AuthProvider>
    </RouterProvider>
  );
}
