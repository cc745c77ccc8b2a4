// Accessibility checks for the end-to-end suite, all run inside the page through playwright-core:
// axe-core (the npm package's source, evaluated in the page), where keyboard focus is and whether
// it can be seen, WCAG contrast of what axe cannot judge (text on gradients), and boxes that must not
// overlap.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import axe from 'axe-core';
import { ARTIFACTS, WAIT_MS } from './harness.mjs';

/** WCAG 2.0 and 2.1, levels A and AA, plus axe's best practices. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
/** Impacts that fail the suite; moderate and minor ones are written to axe-report.json. */
export const AXE_FAILING = new Set(['serious', 'critical']);

/** Every axe result of the run, by state, for test-artifacts/e2e/axe-report.json. */
const report = [];

/**
 * Runs axe-core on the page as it is now and fails on any serious or critical violation, naming
 * the state, the rule, the elements and axe's own summary.
 */
export async function expectNoAxeViolations(page, state) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axe.source);
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] }),
    AXE_TAGS,
  );
  const viewport = page.viewportSize();
  const size = viewport ? `${viewport.width}x${viewport.height}` : '?';
  const violations = result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
  }));
  report.push({ state, size, violations });
  const failing = violations.filter((v) => AXE_FAILING.has(v.impact));
  assert.equal(
    failing.length,
    0,
    `axe, ${state} at ${size}:\n` +
      failing
        .map((v) => `  ${v.impact} ${v.id} (${v.help}):\n` + v.nodes.map((n) => `    ${n.target}: ${n.summary.replace(/\n\s*/g, ' ')}`).join('\n'))
        .join('\n'),
  );
  return violations;
}

export function writeAxeReport() {
  if (report.length === 0) return null;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const p = path.join(ARTIFACTS, 'axe-report.json');
  fs.writeFileSync(p, JSON.stringify(report, null, 2));
  return p;
}

/**
 * In-page helpers (installed once per document): WCAG contrast, the colours behind an element
 * (a solid background or every stop of a gradient), and a description of the focused element.
 */
const HELPERS = `(() => {
  if (window.__a11y) return;
  const parse = (s) => (s.match(/rgba?\\([^)]*\\)/g) || []).map((c) => {
    const [r, g, b, a = 1] = c.replace(/rgba?\\(|\\)/g, '').split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  });
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const contrast = (x, y) => { const [a, b] = [lum(x), lum(y)].sort((p, q) => q - p); return (a + 0.05) / (b + 0.05); };
  // The colours painted behind \`el\` (from \`el\` itself outwards): a gradient's stops, or the first
  // opaque background colour.
  const behind = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const cs = getComputedStyle(n);
      if (/gradient/.test(cs.backgroundImage)) return parse(cs.backgroundImage);
      const [bg] = parse(cs.backgroundColor);
      if (bg && bg.a > 0.95) return [bg];
    }
    return [{ r: 255, g: 255, b: 255, a: 1 }];
  };
  const minContrast = (fg, el) => Math.min(...behind(el).map((bg) => contrast(fg, bg)));
  const describe = (el) => {
    if (!el || el === document.body) return 'body';
    const tid = el.getAttribute('data-testid');
    const label = (el.getAttribute('aria-label') || el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (tid ? '[data-testid=' + tid + ']' : '') + (label ? ' "' + label + '"' : '');
  };
  // Is the focus indicator there, and 3:1 against what it is drawn on (WCAG 1.4.11, 2.4.7)?
  const focusRing = () => {
    let el = document.activeElement;
    if (!el || el === document.body) return { ok: false, why: 'focus is on body' };
    // A visually hidden radio shows its ring on its label.
    if (getComputedStyle(el).opacity === '0' && el.closest('label')) el = el.closest('label');
    const cs = getComputedStyle(el);
    const width = parseFloat(cs.outlineWidth);
    if (cs.outlineStyle === 'none' || !(width >= 2)) return { ok: false, why: 'no outline on ' + describe(el) + ' (' + cs.outlineStyle + ' ' + cs.outlineWidth + ')' };
    const [color] = parse(cs.outlineColor);
    // Drawn outside the element (offset >= 0): on its parent's background; inside: on its own.
    const on = parseFloat(cs.outlineOffset) < 0 ? el : el.parentElement;
    const ratio = minContrast(color, on);
    return { ok: ratio >= 3, ratio, why: describe(el) + ' (' + el.className + ') ring ' + cs.outlineColor + ' at ' + ratio.toFixed(2) + ':1' };
  };
  window.__a11y = { parse, contrast, behind, minContrast, describe, focusRing };
})()`;

export async function installHelpers(page) {
  await page.evaluate(HELPERS);
}

/** A description of the focused element: tag#id[data-testid] "text". */
export async function focused(page) {
  await installHelpers(page);
  return page.evaluate(() => window.__a11y.describe(document.activeElement));
}

/** Fails unless `selector` matches the focused element. */
export async function expectFocus(page, selector, step) {
  await installHelpers(page);
  const ok = await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector);
  assert.ok(ok, `${step}: focus should be on ${selector}, is on ${await focused(page)}`);
}

/** Waits (bounded) for focus to reach `selector`, then fails like expectFocus if it did not. */
export async function waitFocus(page, selector, step, timeout = WAIT_MS) {
  await page.waitForFunction((s) => document.activeElement?.matches(s) ?? false, selector, { timeout }).catch(() => {});
  await expectFocus(page, selector, step);
}

/** Fails unless the focused element shows a focus ring of 2 px or more at 3:1 or more. */
export async function expectVisibleFocus(page, step) {
  await installHelpers(page);
  const ring = await page.evaluate(() => window.__a11y.focusRing());
  assert.ok(ring.ok, `${step}: focus indicator: ${ring.why}`);
}

/**
 * Presses Tab (or Shift+Tab) until `selector` has focus, at most `max` times; every stop on the way
 * must show its focus ring. Returns the number of presses.
 */
export async function tabTo(page, selector, { back = false, max = 40, step = 'Tab' } = {}) {
  await installHelpers(page);
  const stops = [];
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    stops.push(await focused(page));
    await expectVisibleFocus(page, `${step}, stop ${i}`);
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return i;
  }
  assert.fail(`${step}: ${selector} not reached in ${max} presses; stops: ${stops.join(' → ')}`);
}

/**
 * The contrast of every toast's text (4.5:1) and close button (3:1) against both ends of its
 * gradient, which axe leaves as "needs review". Returns one row per toast.
 */
export async function toastContrast(page) {
  await installHelpers(page);
  return page.evaluate(() => {
    const { parse, minContrast } = window.__a11y;
    return [...document.querySelectorAll('.Toastify__toast.pm-toast')].map((t) => {
      const text = (sel) => {
        const el = t.querySelector(sel);
        return el && el.getClientRects().length ? minContrast(parse(getComputedStyle(el).color)[0], el) : null;
      };
      return {
        level: t.querySelector('[data-level]')?.getAttribute('data-level'),
        message: text('.pm-toast__message'),
        hint: text('.pm-toast__hint'),
        close: text('.Toastify__close-button'),
      };
    });
  });
}

/** Waits until every animation and transition except the toasts' countdown bars has finished. */
export async function settled(page) {
  await page.evaluate(async () => {
    for (let i = 0; i < 20; i++) {
      const running = document.getAnimations().filter((a) => !a.effect?.target?.classList?.contains('Toastify__progress-bar'));
      if (running.length === 0) return;
      await Promise.all(running.map((a) => a.finished.catch(() => {})));
    }
  });
}

/** Boxes of the elements matching `selector` that are rendered (non-empty), in page coordinates. */
export async function boxes(page, selector) {
  return page.evaluate(
    (s) =>
      [...document.querySelectorAll(s)]
        .map((el) => {
          const r = el.getBoundingClientRect();
          return { x: r.left, y: r.top, w: r.width, h: r.height, what: el.getAttribute('data-testid') || el.className };
        })
        .filter((b) => b.w > 0 && b.h > 0),
    selector,
  );
}

export function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** Fails if any box of `as` overlaps any box of `bs`. */
export function expectApart(as, bs, what) {
  for (const a of as) {
    for (const b of bs) assert.ok(!overlaps(a, b), `${what}: ${JSON.stringify(a)} overlaps ${JSON.stringify(b)}`);
  }
}

/**
 * Every element matching `selector` that is visible in its scroll container gets the pointer: the
 * element at its centre is itself (or inside it), not a toast lying over it.
 */
export async function expectClickable(page, selector, what) {
  const misses = await page.evaluate((s) => {
    const out = [];
    for (const el of document.querySelectorAll(s)) {
      el.scrollIntoView({ block: 'nearest' });
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      if (!hit || !(el === hit || el.contains(hit))) out.push(`${el.getAttribute('data-testid')} is under ${hit ? hit.className || hit.tagName : 'nothing'}`);
    }
    return out;
  }, selector);
  assert.deepEqual(misses, [], `${what}: controls covered`);
}
