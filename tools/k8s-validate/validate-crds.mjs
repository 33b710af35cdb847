// Offline validation of the custom resources in the rendered manifests, with the CRD models of
// the npm registry (exact pins in package.json / package-lock.json):
//
//   ServiceMonitor  (monitoring.coreos.com/v1)   @kubernetes-models/prometheus-operator
//   PrometheusRule  (monitoring.coreos.com/v1)   @kubernetes-models/prometheus-operator
//   Application     (argoproj.io/v1alpha1)       @kubernetes-models/argo-cd
//
// Two checks per object:
//   1. model.validate(): the CRD's OpenAPI schema (types, required fields, patterns, enums).
//      These schemas do not reject unknown fields.
//   2. strictness: TypeScript's excess-property check of the object, as a literal, against the
//      model's interface (IServiceMonitor, IApplication), so a misspelt or unknown field anywhere
//      in the object fails, like `kubectl apply --validate=strict` would.
//
// Input on stdin: JSON [{"source": "build/k8s/home.yaml", "object": {...}}, ...]
// Exit 0 when every object passes; 1 with one line per problem otherwise.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { Application } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application";

const here = dirname(fileURLToPath(import.meta.url));

const KINDS = {
  "monitoring.coreos.com/v1/ServiceMonitor": {
    model: ServiceMonitor,
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    type: "IServiceMonitor",
  },
  "monitoring.coreos.com/v1/PrometheusRule": {
    model: PrometheusRule,
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
    type: "IPrometheusRule",
  },
  "argoproj.io/v1alpha1/Application": {
    model: Application,
    module: "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application",
    type: "IApplication",
  },
};

const label = (e) => `${e.source}: ${e.object.kind}/${e.object.metadata?.name ?? "?"}`;

function schemaCheck(entries) {
  const problems = [];
  for (const e of entries) {
    const spec = KINDS[`${e.object.apiVersion}/${e.object.kind}`];
    try {
      new spec.model(e.object).validate();
    } catch (err) {
      problems.push(`${label(e)}: ${err.message}`);
    }
  }
  return problems;
}

function strictCheck(entries) {
  // One virtual TypeScript file: `const o0: IServiceMonitor = {...};` per object.
  const imports = new Map();
  const lines = [];
  entries.forEach((e, i) => {
    const spec = KINDS[`${e.object.apiVersion}/${e.object.kind}`];
    imports.set(spec.type, spec.module);
    lines.push(`// ${i}: ${label(e)}`);
    lines.push(`export const o${i}: ${spec.type} = ${JSON.stringify(e.object, null, 1)};`);
  });
  const header = [...imports].map(([t, m]) => `import type { ${t} } from "${m}";`);
  const text = [...header, ...lines].join("\n");
  const fileName = join(here, "__rendered_objects__.ts");

  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) =>
    name === fileName
      ? ts.createSourceFile(name, text, lang, true)
      : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  host.readFile = (name) => (name === fileName ? text : readFile.call(host, name));

  const program = ts.createProgram([fileName], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const textLines = text.split("\n");
  return diagnostics.map((d) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || d.file.fileName !== fileName) return `typecheck: ${msg}`;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    // The object this line belongs to: the nearest "// i: label" line above it.
    let owner = "?";
    for (let l = line; l >= 0; l--) {
      const m = /^\/\/ \d+: (.*)$/.exec(textLines[l]);
      if (m) {
        owner = m[1];
        break;
      }
    }
    return `${owner}: ${msg.split("\n").at(-1)} (at: ${textLines[line].trim()})`;
  });
}

const entries = JSON.parse(readFileSync(0, "utf8"));
const unknown = entries.filter((e) => !KINDS[`${e.object.apiVersion}/${e.object.kind}`]);
if (unknown.length) {
  for (const e of unknown) console.error(`${label(e)}: no CRD model for ${e.object.apiVersion}`);
  process.exit(1);
}
const problems = entries.length ? [...schemaCheck(entries), ...strictCheck(entries)] : [];
for (const p of problems) console.error(`ERROR ${p}`);
const counts = {};
for (const e of entries) counts[e.object.kind] = (counts[e.object.kind] ?? 0) + 1;
console.log(
  `crd-models: ${entries.length} objects (${Object.entries(counts)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ") || "none"}), ${problems.length} problems`,
);
process.exit(problems.length ? 1 : 0);
