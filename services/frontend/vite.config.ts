/// <reference types="vitest" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The API serves dist/ at "/" (services/api/live.py); `npm run dev` proxies the API so the
// page can be worked on against a running `scalelab up` (SCALELAB_API=http://127.0.0.1:PORT).
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: Object.fromEntries(
      ["/api", "/tasks"].map((p) => [p, process.env.SCALELAB_API ?? "http://127.0.0.1:8080"]),
    ),
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.tsx", "src/**/*.test.ts"],
    setupFiles: ["src/test-setup.ts"],
  },
});
