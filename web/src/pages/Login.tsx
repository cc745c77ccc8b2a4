import { useEffect, useState, type FormEvent } from 'react';
import { Car, LogIn } from 'lucide-react';
import { api, errorMessage, type DemoAccount } from '../app/api';
import { homeFor, useAuth } from '../app/auth';
import { navigate } from '../app/router';
import { ErrorBox } from '../app/components';

const ROLE_LABEL: Record<string, string> = { user: 'Driver', owner: 'Lot owner', admin: 'Admin', employee: 'Employee' };

export function LoginPage() {
  const { login } = useAuth();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [demo, setDemo] = useState<DemoAccount[] | null>(null);

  useEffect(() => {
    // Development only: the list is hidden when the server answers 404 (or anything else).
    api
      .demoAccounts()
      .then((r) => setDemo(Array.isArray(r?.accounts) ? r.accounts : null))
      .catch(() => setDemo(null));
  }, []);

  const signIn = async (e: string, p: string) => {
    setBusy(true);
    setError(null);
    try {
      const user = await login(e, p);
      navigate(homeFor(user.role), true);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const onSubmit = (ev: FormEvent) => {
    ev.preventDefault();
    void signIn(email.trim(), password);
  };

  return (
    <main className="login">
      <div className="login__card card">
        <div className="login__brand">
          <Car size={28} aria-hidden />
          <h1>Parkmate</h1>
        </div>
        <p className="muted">Sign in to book parking and get live updates.</p>
        <form onSubmit={onSubmit} className="form" data-testid="login-form">
          <label className="field">
            <span>Email</span>
            <input
              type="email"
              autoComplete="username"
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              required
              data-testid="login-email"
            />
          </label>
          <label className="field">
            <span>Password</span>
            <input
              type="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
              data-testid="login-password"
            />
          </label>
          <ErrorBox testId="login-error">{error}</ErrorBox>
          <button className="btn btn--primary btn--block" type="submit" disabled={busy} data-testid="login-submit">
            <LogIn size={16} aria-hidden /> {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        {demo && demo.length > 0 && (
          <section className="demo" data-testid="demo-accounts">
            <h2>Demo accounts</h2>
            <ul>
              {demo.map((a) => (
                <li key={a.email}>
                  <button
                    type="button"
                    className="demo__btn"
                    disabled={busy}
                    onClick={() => void signIn(a.email, a.password)}
                    data-testid={`demo-account-${a.email}`}
                  >
                    <span className="demo__name">{a.name}</span>
                    <span className="demo__meta">
                      {ROLE_LABEL[a.role] ?? a.role} · {a.email}
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          </section>
        )}
      </div>
    </main>
  );
}
