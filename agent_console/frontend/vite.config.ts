// Builds the console into agent_console/static/console/, which agent_console/web.py serves
// at /console. No dev server: the console talks to a running hub, so build and reload.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: {
    outDir: fileURLToPath(new URL('../static/console', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // The hub's CSP allows no inline script; never inline assets as data: URLs either.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: true,
  },
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
});
