// Builds only the notification module (src/notifications) as a library, to measure what it costs an
// app that lifts it. Output goes to dist-lib/ (never served). React, react-dom and react/jsx-runtime
// stay external (every host app has them); two variants are built by scripts/size.mjs:
//   - "own code": react-toastify and lucide-react external too
//   - "with deps": react-toastify and the four lucide icons bundled
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const withDeps = process.env.PM_LIB_WITH_DEPS === '1';
const external = withDeps
  ? ['react', 'react-dom', 'react/jsx-runtime']
  : ['react', 'react-dom', 'react/jsx-runtime', 'react-toastify', 'lucide-react'];

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: withDeps ? 'dist-lib/with-deps' : 'dist-lib/own',
    emptyOutDir: true,
    lib: {
      entry: 'src/notifications/index.ts',
      formats: ['es'],
      fileName: () => 'parkmate-notifications.js',
    },
    rolldownOptions: { external },
    rollupOptions: { external },
  },
});
