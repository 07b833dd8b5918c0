// The dashboard's build: web/ into dist/web/, served by src/http/dashboard.ts.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    manifest: true,
    // One small module graph: no inline assets (the CSP allows files only), no module preload polyfill script.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
});
