// Schema validation of Kubernetes objects: the kubernetes-models validators (types, required
// fields, enums) plus a strict unknown-field check (as `kubeconform -strict`), whose field
// lists are read from the same packages' TypeScript declarations (.d.ts). A misspelt key
// anywhere under a typed field fails; free-form maps (labels, data) are not checked.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGES = {
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator/monitoring.coreos.com',
};

// Module specifier of the model class for an apiVersion/kind, e.g. apps/v1 Deployment ->
// kubernetes-models/apps/v1/Deployment.
function modelSpecifier(apiVersion, kind) {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  if (PACKAGES[group]) return `${PACKAGES[group]}/${apiVersion.slice(slash + 1)}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const classCache = new Map();  // `${dtsFile}#${iface}` -> Map field -> {file, type}

// Reads the fields of the class in `dtsFile` whose interface alias is `iface` (or the only
// class of the file): see parseFields. Returns null when the file declares no class
// (a scalar alias such as Quantity or IntOrString).
function readClassFields(dtsFile, iface) {
  const key = `${dtsFile}#${iface || ''}`;
  if (classCache.has(key)) return classCache.get(key);
  const text = fs.readFileSync(dtsFile, 'utf8');
  let className = null;
  if (iface) {
    const alias = new RegExp(`(\\w+) as ${iface}\\b`).exec(text);
    if (alias) className = alias[1].replace(/^I/, '');
  }
  const classes = [...text.matchAll(/export declare class (\w+)\b[^{]*\{/g)];
  const found = classes.find((c) => c[1] === className) || (classes.length === 1 ? classes[0] : null);
  if (!found) { classCache.set(key, null); return null; }
  // The class body: from after its "{" to the matching "}".
  let depth = 1;
  let i = found.index + found[0].length;
  const bodyStart = i;
  for (; i < text.length && depth > 0; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}') depth--;
  }
  const imports = new Map();
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) imports.set(m[1], m[2]);
  const out = parseFields(text.slice(bodyStart, i - 1).split('\n'), 4, imports, dtsFile);
  classCache.set(key, out);
  return out;
}

// Parses the field lines of a class body or inline object type at `indent` spaces:
// Map name -> {type, imports, dtsFile, inline?: Map, array?: bool}. A field whose type is an
// inline object ("{" or "Array<{" ending the line) gets its own fields in `inline`.
function parseFields(lines, indent, imports, dtsFile) {
  const fields = new Map();
  const re = new RegExp(`^ {${indent}}"([^"]+)"\\??:\\s*(.*?);?\\s*$`);
  for (let k = 0; k < lines.length; k++) {
    const m = re.exec(lines[k]);
    if (!m) continue;
    const f = { type: m[2], imports, dtsFile };
    if (/(^|<)\{$/.test(m[2])) {
      const inner = [];
      const close = new RegExp(`^ {${indent}}\\}`);
      for (k++; k < lines.length && !close.test(lines[k]); k++) inner.push(lines[k]);
      // An index signature ({ [key: string]: T }) is a free-form map: not checked.
      if (!inner.some((l) => /^\s*\[\w+: string\]/.test(l))) {
        f.inline = parseFields(inner, indent + 4, imports, dtsFile);
        f.array = m[2].startsWith('Array<');
      }
    }
    fields.set(m[1], f);
  }
  return fields;
}

// Resolves an imported interface name used in `fromFile` to [dtsFile, iface] or null.
function resolveType(typeText, imports, fromFile) {
  let t = typeText.trim();
  let array = false;
  const arr = /^Array<(\w+)>$/.exec(t);
  if (arr) { t = arr[1]; array = true; }
  if (!/^\w+$/.test(t) || !imports.has(t)) return null;
  const spec = imports.get(t);
  let target;
  if (spec.startsWith('.')) {
    target = path.resolve(path.dirname(fromFile), spec.replace(/\.js$/, '.d.ts'));
  } else {
    target = fileURLToPath(import.meta.resolve(spec)).replace(/\.js$/, '.d.ts');
  }
  return { dtsFile: target, iface: t, array };
}

function isPlainObject(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

// Walks `value` against the class fields; pushes "path: unknown field" problems to `out`.
function walk(value, fields, where, out) {
  if (!fields || !isPlainObject(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const f = fields.get(k);
    if (!f) {
      out.push(`${where}: unknown field "${k}" (allowed: ${[...fields.keys()].sort().join(', ')})`);
      continue;
    }
    let r;
    let sub;
    if (f.inline) {
      r = { array: f.array };
      sub = f.inline;
    } else {
      r = resolveType(f.type, f.imports, f.dtsFile);
      if (!r) continue;
      sub = readClassFields(r.dtsFile, r.iface);
    }
    if (r.array && Array.isArray(v)) v.forEach((item, i) => walk(item, sub, `${where}.${k}[${i}]`, out));
    else walk(v, sub, `${where}.${k}`, out);
  }
}

// Validates one object. Returns a list of problems (empty when valid).
export async function validateK8sObject(obj) {
  if (!isPlainObject(obj) || typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
    return ['not a Kubernetes object (apiVersion and kind are required strings)'];
  }
  const spec = modelSpecifier(obj.apiVersion, obj.kind);
  let mod;
  try {
    mod = await import(spec);
  } catch (e) {
    return [`unknown apiVersion/kind ${obj.apiVersion} ${obj.kind} (no model ${spec})`];
  }
  const Model = mod[obj.kind];
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`schema: ${String(e.message).split('\n').slice(0, 5).join('; ')}`);
  }
  const dts = fileURLToPath(import.meta.resolve(spec)).replace(/\.js$/, '.d.ts');
  walk(obj, readClassFields(dts, null), obj.kind, problems);
  return problems;
}
