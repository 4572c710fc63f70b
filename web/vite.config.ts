import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The built app goes into the Python package, so a wheel carries it (no CDN at run time).
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../src/deeptoolbox/apps/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 3000,
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
