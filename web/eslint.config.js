// ESLint flat config: typescript-eslint with type information (so promise and `any` mistakes are
// caught, not only syntax), React's hooks rules (including the compiler-backed ones: refs, purity,
// state in effects), TSDoc syntax for doc comments, plain Node globals for the e2e suite and
// build scripts, and a service worker's globals for public/push-sw.js.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tsdoc from 'eslint-plugin-tsdoc';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    // Build output (the app, the size builds, the npm package), and the file openapi-typescript generates (checked by `npm run api:check`).
    ignores: ['dist/', 'dist-lib/', 'packages/notify/dist/', 'test-artifacts/', 'src/api/schema.d.ts'],
  },
  js.configs.recommended,
  {
    files: ['**/*.{ts,tsx}'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      globals: globals.browser,
      parserOptions: {
        // The Vite configs run in Node: typed by tsconfig.node.json, not by the app's tsconfig.
        projectService: {
          allowDefaultProject: ['vite.config.ts', 'vite.lib.config.ts'],
          defaultProject: 'tsconfig.node.json',
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { tsdoc },
    rules: {
      // Doc comments are TSDoc (`/** */`, `@packageDocumentation` for a module's header).
      'tsdoc/syntax': 'error',
      // `const { type: _type, ...rest } = frame` drops a field on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.{ts,tsx}'],
    extends: [reactHooks.configs.flat['recommended-latest']],
  },
  {
    files: ['**/*.{js,mjs}'],
    languageOptions: { globals: globals.node },
  },
  {
    // The push service worker runs in the browser's worker scope (`self`, `clients`), not in Node.
    files: ['public/push-sw.js'],
    languageOptions: { globals: globals.serviceworker, sourceType: 'script' },
  },
  {
    // Callbacks handed to Playwright's page.evaluate()/addInitScript() run in the browser.
    files: ['e2e/**/*.mjs'],
    languageOptions: {
      globals: { window: 'readonly', document: 'readonly', getComputedStyle: 'readonly', navigator: 'readonly', Notification: 'readonly', localStorage: 'readonly' },
    },
  },
);
