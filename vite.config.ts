import adapter from '@sveltejs/adapter-node';
import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

// The console (console/) is built from the project root (`npm run build`): one package.json
// holds every dependency. The console is served by the API process (api/console.ts mounts the
// built handler), so the adapter's environment variables are prefixed apart from LabRelay's own.
export default defineConfig({
  plugins: [
    sveltekit({
      adapter: adapter({ out: 'console/build', envPrefix: 'LABRELAY_CONSOLE_' }),
      outDir: 'console/.svelte-kit',
      files: { src: 'console/src', assets: 'console/static' },
    }),
  ],
});
