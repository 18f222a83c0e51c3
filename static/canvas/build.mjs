// Bundle the canvas island: src/index.jsx -> <outdir>/canvas.js + canvas.css, minified and
// deterministic (no timestamps, no source paths), so the committed dist/ can be checked by
// rebuilding. Usage: node build.mjs [--outdir=DIR]  (default: dist)
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = process.argv.find((a) => a.startsWith("--outdir="));
const outdir = arg ? path.resolve(arg.slice("--outdir=".length)) : path.join(here, "dist");

await esbuild.build({
  absWorkingDir: here,
  entryPoints: { canvas: "src/index.jsx" },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "none",
  charset: "utf8",
  outdir,
  logLevel: "warning",
});
