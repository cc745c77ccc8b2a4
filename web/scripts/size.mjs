// Prints gzipped sizes of the app build (dist/) and of the notification module built alone
// (dist-lib/own: react, react-toastify, lucide-react external; dist-lib/with-deps: only react
// external). Run by `npm run build`; the numbers go into README.md.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

function measure(dir, exts = ['.js', '.css', '.html']) {
  let raw = 0;
  let gz = 0;
  for (const f of files(dir).filter((f) => exts.some((e) => f.endsWith(e)))) {
    const b = readFileSync(f);
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  return { raw, gz };
}

const kb = (n) => `${(n / 1024).toFixed(1)} kB`;

if (!existsSync('dist-lib/with-deps')) {
  execFileSync('npx', ['vite', 'build', '--config', 'vite.lib.config.ts', '--logLevel', 'warn'], {
    stdio: 'inherit',
    env: { ...process.env, PM_LIB_WITH_DEPS: '1' },
  });
}

const rows = [
  ['whole app (dist/: js + css + html)', measure('dist')],
  ['notification module, own code (deps external)', measure('dist-lib/own')],
  ['notification module + react-toastify + 4 icons (react external)', measure('dist-lib/with-deps')],
];
console.log('\nbundle sizes (gzip -9):');
for (const [name, s] of rows) console.log(`  ${name.padEnd(66)} ${kb(s.gz).padStart(9)} gz  (${kb(s.raw)} raw)`);
