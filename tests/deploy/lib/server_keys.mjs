// The slq-server option names (YAML keys), read from server/main/server_config.cc so the
// deploy files follow the code; the contract's list when that file is not there.
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from './common.mjs';

const CONTRACT = [
  'listen', 'metrics-listen', 'data-dir', 'store', 'artifact-dir', 'model-cache-dir',
  'allowed-roots', 'auth-token-file', 'tls-cert', 'tls-key', 'tls-client-ca',
  'in-process-worker', 'device', 'serve-models', 'max-queue', 'kv-cache-bytes',
  'shadow-fraction',
];

// Returns {keys: Set of YAML keys (underscores), source: where they came from}.
export function serverYamlKeys() {
  const file = path.join(REPO, 'server', 'main', 'server_config.cc');
  let flags = CONTRACT;
  let source = 'contract list';
  if (fs.existsSync(file)) {
    const found = [...fs.readFileSync(file, 'utf8').matchAll(/Add\(app, "([a-z0-9-]+)"/g)].map((m) => m[1]);
    if (found.length > 0) { flags = found; source = file; }
  }
  return { keys: new Set(flags.map((f) => f.replaceAll('-', '_'))), source };
}

// Problems with a server YAML config object: unknown keys, wrong value shapes.
export function checkServerConfig(cfg, where) {
  const { keys, source } = serverYamlKeys();
  const out = [];
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) {
    return [`${where}: the config must be a YAML mapping`];
  }
  for (const [k, v] of Object.entries(cfg)) {
    if (!keys.has(k)) { out.push(`${where}: unknown key "${k}" (known from ${source}: ${[...keys].join(', ')})`); continue; }
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(`${where}: key "${k}" must be a scalar or a list`);
  }
  if ('device' in cfg && !['auto', 'cpu', 'cuda'].includes(cfg.device)) out.push(`${where}: device must be auto, cpu or cuda`);
  if ('shadow_fraction' in cfg && !(cfg.shadow_fraction >= 0 && cfg.shadow_fraction <= 1)) out.push(`${where}: shadow_fraction must be in [0, 1]`);
  if ('store' in cfg && !/^(sqlite|postgres|postgresql):\/\//.test(cfg.store)) out.push(`${where}: store must be sqlite:// or postgres://`);
  return out;
}
