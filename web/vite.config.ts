/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The Rust server listens on 127.0.0.1:8000 in development; it serves `dist/` at `/` in production
// (with an index.html fallback for client routes), so the app only ever uses same-origin paths.
const backend = process.env.PARKMATE_BACKEND ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  resolve: {
    // The app imports the notification module by the npm package's name, as an adopter's app does;
    // here it is the package's source (one copy: packages/notify is built from it). tsconfig.json
    // maps the name the same way.
    alias: { '@parkmate/notify': fileURLToPath(new URL('./src/notifications/index.ts', import.meta.url)) },
  },
  server: {
    port: 5173,
    proxy: {
      '/api': { target: backend, changeOrigin: false },
      '/ws': { target: backend, ws: true, changeOrigin: false },
      '/healthz': { target: backend },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    include: ['test/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
