// Builds only the notification module (src/notifications) as a library. Three variants:
//   - PM_LIB_PACKAGE=1: the npm package @parkmate/notify (packages/notify/dist): ESM, not minified
//     (the host app's bundler minifies), React, react-dom, react-toastify and lucide-react external
//     (peer and ordinary dependencies of the package), its CSS in dist/style.css and imported by
//     the entry, so the host's bundler picks the toasts' look up without an extra import;
//   - default: "own code" (dist-lib/own), the size report's deps-external build;
//   - PM_LIB_WITH_DEPS=1: "with deps" (dist-lib/with-deps), react-toastify and the four lucide icons
//     bundled.
// The two size variants only measure what the module costs an app that lifts it (scripts/size.mjs).
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

const forPackage = process.env.PM_LIB_PACKAGE === '1';
const withDeps = !forPackage && process.env.PM_LIB_WITH_DEPS === '1';
const externalPackages = withDeps
  ? ['react', 'react-dom']
  : ['react', 'react-dom', 'react-toastify', 'lucide-react'];
// `react/jsx-runtime` and `react-dom/client` are the same packages as `react` and `react-dom`.
const external = (id: string) => externalPackages.some((p) => id === p || id.startsWith(`${p}/`));

const CSS_FILE = 'style.css';

/** Library mode writes the CSS beside the JS without importing it: the package's entry imports it. */
function importOwnCss(): Plugin {
  return {
    name: 'parkmate-notify-import-css',
    enforce: 'post',
    apply: 'build',
    generateBundle(_options, bundle) {
      const entry = bundle['index.js'];
      if (!(CSS_FILE in bundle)) this.error(`the library build wrote no ${CSS_FILE}`);
      if (entry?.type !== 'chunk') this.error('the library build wrote no index.js');
      entry.code = `import './${CSS_FILE}';\n${entry.code}`;
    },
  };
}

export default defineConfig({
  plugins: forPackage ? [react(), importOwnCss()] : [react()],
  // public/ is the app's (its favicon), not the library's.
  publicDir: false,
  build: {
    outDir: forPackage ? 'packages/notify/dist' : withDeps ? 'dist-lib/with-deps' : 'dist-lib/own',
    emptyOutDir: true,
    minify: !forPackage,
    lib: {
      entry: 'src/notifications/index.ts',
      formats: ['es'],
      fileName: () => (forPackage ? 'index.js' : 'parkmate-notifications.js'),
      cssFileName: forPackage ? 'style' : 'parkmate-notifications',
    },
    rolldownOptions: { external },
    rollupOptions: { external },
  },
});
