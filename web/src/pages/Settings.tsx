/**
 * `/settings`: how notifications reach the signed-in person (docs/push.md). Push on this device
 * (a Web Push subscription, push.ts), and per kind of notification whether it is shown in the app
 * and pushed, plus quiet hours, saved with `PUT /api/push/preferences`.
 *
 * Only choices that differ from the server's defaults are saved, so a kind the person never touched
 * keeps following the defaults if they change.
 *
 * @packageDocumentation
 */

import { useEffect, useId, useState, type FormEvent } from 'react';
import { api, errorMessage, type EventPreference, type PreferencesAnswer, type QuietHours, type Role } from '../app/api';
import { useAuth } from '../app/auth';
import { ErrorBox, PageHead } from '../app/components';
import { SILENT_EVENTS, useLive } from '../app/live';
import { isPushDisabled, pushSupported, turnPushOff, turnPushOn, currentPushState, type PushState } from '../app/push';

interface Kind {
  event: string;
  label: string;
  /** Sent to a role or a lot's staff: never pushed (docs/push.md, "only notifications to one user"). */
  group?: boolean;
}

/** The kinds each role receives (docs/booking-api.md, Events), in the order people care about. */
export const KINDS: Record<Role, Kind[]> = {
  user: [
    { event: 'booking_expiring', label: 'Booking about to expire' },
    { event: 'booking_expired', label: 'Booking expired' },
    { event: 'booking_renewed', label: 'Booking renewed' },
    { event: 'renewal_failed', label: 'Renewal failed' },
    { event: 'booking_declined', label: 'Booking request declined' },
    { event: 'booking_lapsed', label: 'Booking request lapsed' },
    { event: 'cash_payment_verified', label: 'Cash payment verified' },
    { event: 'car_wash_completed', label: 'Car wash completed' },
  ],
  owner: [
    { event: 'booking_created', label: 'New booking at your lot' },
    { event: 'employee_assigned', label: 'Employee assigned' },
    { event: 'lot_activity', label: 'Activity at your lots' },
  ],
  admin: [
    { event: 'booking_requested', label: 'Booking request awaiting approval', group: true },
    { event: 'booking_request_lapsed', label: 'Booking request lapsed', group: true },
  ],
  employee: [{ event: 'car_wash_requested', label: 'New car-wash job', group: true }],
};

/** Messages a publisher sent without a kind of its own (`custom`), for everyone. */
const OTHER: Kind = { event: 'custom', label: 'Other messages' };

/** Every kind to show: the role's, "other", and any kind the person already has a choice for. */
export function kindsFor(role: Role, saved: EventPreference[]): Kind[] {
  const kinds = [...(KINDS[role] ?? []), OTHER];
  for (const e of saved) if (!kinds.some((k) => k.event === e.event)) kinds.push({ event: e.event, label: e.event });
  return kinds;
}

type Choices = Record<string, { in_app: boolean; push: boolean }>;

/** The server's default for a kind: shown, and pushed unless it is push-off by default. */
function defaultChoice(event: string, prefs: Pick<PreferencesAnswer, 'push_off_by_default'>) {
  return { in_app: true, push: !prefs.push_off_by_default.includes(event) };
}

export function choicesFrom(kinds: Kind[], prefs: PreferencesAnswer): Choices {
  const out: Choices = {};
  for (const k of kinds) {
    const saved = prefs.events.find((e) => e.event === k.event);
    out[k.event] = saved ? { in_app: saved.in_app, push: saved.push } : defaultChoice(k.event, prefs);
  }
  return out;
}

/** What to `PUT`: only the kinds whose choice differs from the default. */
export function eventsToSave(choices: Choices, prefs: Pick<PreferencesAnswer, 'push_off_by_default'>): EventPreference[] {
  return Object.entries(choices)
    .filter(([event, c]) => {
      const d = defaultChoice(event, prefs);
      return c.in_app !== d.in_app || c.push !== d.push;
    })
    .map(([event, c]) => ({ event, in_app: c.in_app, push: c.push }));
}

/** The browser's own time zone, the quiet hours' default. */
function localTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function timeZones(current: string): string[] {
  let zones: string[] = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    // An old browser: the current zone is still offered.
  }
  return zones.includes(current) ? zones : [current, ...zones];
}

const PUSH_TEXT: Record<PushState['kind'], string> = {
  checking: 'Checking this device…',
  unsupported: 'This browser cannot receive push notifications (it needs service workers, the Push API and a secure page).',
  disabled: 'Push notifications are not enabled on this server.',
  denied: 'Notifications are blocked for this site. Allow them in the browser’s site settings, then turn push on here.',
  off: 'Off: notifications reach you only while Parkmate is open.',
  on: 'On: what you don’t see in an open tab within a few seconds is pushed to this device.',
};

function PushSection() {
  const [state, setState] = useState<PushState>({ kind: 'checking' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    currentPushState().then(
      (s) => {
        if (!cancelled) setState(s);
      },
      (e: unknown) => {
        if (cancelled) return;
        setState(pushSupported() ? { kind: 'off' } : { kind: 'unsupported' });
        setError(errorMessage(e));
      },
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const toggle = async (on: boolean) => {
    setBusy(true);
    setError(null);
    try {
      setState(await (on ? turnPushOn() : turnPushOff()));
    } catch (e) {
      if (isPushDisabled(e)) setState({ kind: 'disabled' });
      else setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const on = state.kind === 'on';
  const usable = on || state.kind === 'off';
  return (
    <section className="card settings" aria-labelledby="push-device-title">
      <h2 id="push-device-title">Push on this device</h2>
      <p className="muted">
        Reaches you when Parkmate is closed, e.g. “Your booking will expire in 5 minutes!” while your phone is in your
        pocket. Each browser you turn it on in gets its own.
      </p>
      <label className="check switch">
        <input
          type="checkbox"
          role="switch"
          checked={on}
          disabled={busy || !usable}
          aria-describedby="push-device-status"
          onChange={(e) => void toggle(e.target.checked)}
          data-testid="push-toggle"
        />
        Push notifications on this device
      </label>
      <p id="push-device-status" className="muted" role="status" data-testid="push-status" data-state={busy ? 'busy' : state.kind}>
        {busy ? (on ? 'Turning push off…' : 'Turning push on…') : PUSH_TEXT[state.kind]}
      </p>
      <ErrorBox testId="push-error">{error}</ErrorBox>
    </section>
  );
}

/** One end of the quiet hours: a local `HH:MM`, required while they are on. */
function QuietTime(props: { label: string; value: string; enabled: boolean; testId: string; onChange: (value: string) => void }) {
  return (
    <label className="field">
      <span>{props.label}</span>
      <input
        type="time"
        required={props.enabled}
        disabled={!props.enabled}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        data-testid={props.testId}
      />
    </label>
  );
}

function KindRow({
  kind,
  choice,
  urgent,
  onChange,
}: {
  kind: Kind;
  choice: { in_app: boolean; push: boolean };
  urgent: boolean;
  onChange: (c: { in_app: boolean; push: boolean }) => void;
}) {
  const silent = SILENT_EVENTS.has(kind.event);
  const note = urgent
    ? 'Urgent: pushed at once, also during quiet hours.'
    : kind.group
      ? 'Sent to everyone in your role: shown in the app, never pushed.'
      : silent
        ? 'Never a pop-up: it refreshes your dashboard and stays in the inbox.'
        : null;
  return (
    <fieldset className="kind" data-testid={`pref-${kind.event}`}>
      <legend className="kind__name">{kind.label}</legend>
      <div className="kind__choices">
        {!silent && (
          <label className="check">
            <input
              type="checkbox"
              checked={choice.in_app}
              onChange={(e) => onChange({ ...choice, in_app: e.target.checked })}
              data-testid={`pref-${kind.event}-in-app`}
            />
            Show in the app
          </label>
        )}
        {!kind.group && (
          <label className="check">
            <input
              type="checkbox"
              checked={choice.push}
              onChange={(e) => onChange({ ...choice, push: e.target.checked })}
              data-testid={`pref-${kind.event}-push`}
            />
            Push
          </label>
        )}
      </div>
      {note && <p className="kind__note muted">{note}</p>}
    </fieldset>
  );
}

function PreferencesForm({ role }: { role: Role }) {
  const { preferencesSaved } = useLive();
  const [prefs, setPrefs] = useState<PreferencesAnswer | null>(null);
  const [choices, setChoices] = useState<Choices>({});
  const [quiet, setQuiet] = useState<QuietHours>({ time_zone: localTimeZone(), start: '22:00', end: '07:00' });
  const [quietOn, setQuietOn] = useState(false);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [saving, setSaving] = useState(false);
  const ids = useId();
  // Every edit un-says "Saved." until the next save, as the checkboxes do.
  const editQuiet = (patch: Partial<QuietHours>) => {
    setSaved(false);
    setQuiet((q) => ({ ...q, ...patch }));
  };

  const apply = (p: PreferencesAnswer) => {
    setPrefs(p);
    setChoices(choicesFrom(kindsFor(role, p.events), p));
    setQuietOn(p.quiet_hours != null);
    if (p.quiet_hours) setQuiet(p.quiet_hours);
  };

  useEffect(() => {
    let cancelled = false;
    api.preferences().then(
      (p) => {
        if (!cancelled) apply(p);
      },
      (e: unknown) => {
        if (!cancelled) setLoadError(errorMessage(e));
      },
    );
    return () => {
      cancelled = true;
    };
    // Loaded once per mount; `apply` only sets state.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  if (loadError) return <ErrorBox testId="prefs-error">{loadError}</ErrorBox>;
  if (!prefs) return <p className="muted">Loading your preferences…</p>;

  const kinds = kindsFor(role, prefs.events);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaveError(null);
    setSaved(false);
    if (quietOn && quiet.start === quiet.end) {
      setSaveError('Quiet hours must end at a different time than they start.');
      return;
    }
    setSaving(true);
    try {
      const answer = await api.setPreferences({ events: eventsToSave(choices, prefs), quiet_hours: quietOn ? quiet : null });
      apply(answer);
      preferencesSaved(answer);
      setSaved(true);
    } catch (err) {
      setSaveError(errorMessage(err));
    } finally {
      setSaving(false);
    }
  };

  return (
    <form className="card settings form" onSubmit={(e) => void save(e)} aria-labelledby={`${ids}-title`} data-testid="prefs-form">
      <h2 id={`${ids}-title`}>What reaches you</h2>
      <p className="muted">
        “Show in the app” is the pop-up in an open tab; turned off, the notification still goes to your inbox (and is pushed
        if push is on). “Push” is for this account on every device where push is on.
      </p>
      <fieldset className="field kinds">
        <legend>Per kind of notification</legend>
        {kinds.map((k) => (
          <KindRow
            key={k.event}
            kind={k}
            urgent={prefs.urgent.includes(k.event)}
            choice={choices[k.event] ?? defaultChoice(k.event, prefs)}
            onChange={(c) => {
              setSaved(false);
              setChoices((all) => ({ ...all, [k.event]: c }));
            }}
          />
        ))}
      </fieldset>
      <fieldset className="field quiet">
        <legend>Quiet hours</legend>
        <label className="check">
          <input
            type="checkbox"
            checked={quietOn}
            onChange={(e) => {
              setSaved(false);
              setQuietOn(e.target.checked);
            }}
            data-testid="quiet-on"
          />
          Hold pushes during quiet hours
        </label>
        <p className="muted">
          A push falling due then waits until they end.
          {kinds.some((k) => prefs.urgent.includes(k.event)) && ' Urgent ones (a booking about to expire or expired) are pushed anyway.'}
        </p>
        <div className="form--row quiet__times">
          <label className="field">
            <span>Time zone</span>
            <select
              value={quiet.time_zone}
              disabled={!quietOn}
              onChange={(e) => editQuiet({ time_zone: e.target.value })}
              data-testid="quiet-time-zone"
            >
              {timeZones(quiet.time_zone).map((z) => (
                <option key={z} value={z}>
                  {z}
                </option>
              ))}
            </select>
          </label>
          <QuietTime label="From" value={quiet.start} enabled={quietOn} testId="quiet-start" onChange={(start) => editQuiet({ start })} />
          <QuietTime label="Until" value={quiet.end} enabled={quietOn} testId="quiet-end" onChange={(end) => editQuiet({ end })} />
        </div>
      </fieldset>
      <ErrorBox testId="prefs-save-error">{saveError}</ErrorBox>
      <div className="actions settings__actions">
        <p className="muted" role="status" data-testid="prefs-status">
          {saving ? 'Saving…' : saved ? 'Saved.' : ''}
        </p>
        <button type="submit" className="btn btn--primary" disabled={saving} data-testid="prefs-save">
          Save preferences
        </button>
      </div>
    </form>
  );
}

export function SettingsPage() {
  const { user } = useAuth();
  if (!user) return null;
  return (
    <main className="page page--narrow">
      <PageHead title="Notification settings" sub="How Parkmate tells you what happens while you are away." />
      <PushSection />
      <PreferencesForm role={user.role} />
    </main>
  );
}
