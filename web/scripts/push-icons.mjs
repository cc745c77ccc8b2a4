// Draws the push notifications' icons, public/push-icons/<level>.png: each level's toast colour
// with its lucide icon (LEVEL_STYLES in src/notifications/notify.tsx, colours from
// notifications.css), so a push looks like the toast it replaces. PNG because browsers do not
// decode SVG for notification icons. Run after changing a colour or an icon, then commit the PNGs:
//   node scripts/push-icons.mjs        (Debian's Chromium, or E2E_CHROMIUM)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const OUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'public', 'push-icons');
const SIZE = 192; // what Android and desktop notification centres scale down from without blur

// lucide 24×24 paths: circle-check-big (CheckCircle), circle-x (XCircle),
// triangle-exclamation-point (AlertTriangle), info (Info).
const CHECK = '<path d="M21.801 10A10 10 0 1 1 17 3.335"/><path d="m9 11 3 3L22 4"/>';
const X = '<circle cx="12" cy="12" r="10"/><path d="m15 9-6 6"/><path d="m9 9 6 6"/>';
const ALERT = '<path d="m21.73 18-8-14a2 2 0 0 0-3.48 0l-8 14A2 2 0 0 0 4 21h16a2 2 0 0 0 1.73-3"/><path d="M12 9v4"/><path d="M12 17h.01"/>';
const INFO = '<circle cx="12" cy="12" r="10"/><path d="M12 16v-4"/><path d="M12 8h.01"/>';

/** Level → [gradient from, gradient to, glyph colour, glyph] as the toasts draw them. */
const LEVELS = {
  success: ['#15803d', '#166534', '#fff', CHECK],
  confirm: ['#15803d', '#166534', '#fff', CHECK],
  error: ['#dc2626', '#b91c1c', '#fff', X],
  warning: ['#facc15', '#eab308', '#422006', ALERT],
  info: ['#2563eb', '#1d4ed8', '#fff', INFO],
};

function svg([from, to, ink, glyph]) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}" viewBox="0 0 48 48">
  <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${from}"/><stop offset="1" stop-color="${to}"/></linearGradient></defs>
  <rect width="48" height="48" rx="11" fill="url(#g)"/>
  <g transform="translate(10 10) scale(1.1667)" fill="none" stroke="${ink}" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${glyph}</g>
</svg>`;
}

const browser = await chromium.launch({ executablePath: process.env.E2E_CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: SIZE, height: SIZE } });
  fs.mkdirSync(OUT, { recursive: true });
  for (const [level, style] of Object.entries(LEVELS)) {
    await page.setContent(`<html><body style="margin:0;background:transparent">${svg(style)}</body></html>`);
    const file = path.join(OUT, `${level}.png`);
    await page.locator('svg').screenshot({ path: file, omitBackground: true });
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
} finally {
  await browser.close();
}
