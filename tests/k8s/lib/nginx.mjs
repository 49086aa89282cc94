// k8s/nginx/nginx.conf on a real nginx (Debian's binary; run.sh unpacks it
// into tests/k8s/.deps if nginx is not installed): the configuration must
// parse, and served on a loopback port it must do what the frontend needs --
// SPA fallback, caching, security headers, a health endpoint.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, run, testsDir } from './common.mjs';

function nginxBinary() {
  const local = path.join(testsDir, '.deps', 'nginx', 'usr', 'sbin', 'nginx');
  if (process.env.NGINX_BIN) return process.env.NGINX_BIN;
  const w = run('sh', ['-c', 'command -v nginx']);
  if (w.status === 0 && w.stdout.trim()) return w.stdout.trim();
  return fs.existsSync(local) ? local : null;
}

function mimeTypes() {
  const local = path.join(testsDir, '.deps', 'nginx', 'etc', 'nginx', 'mime.types');
  return ['/etc/nginx/mime.types', local].find((f) => fs.existsSync(f)) ?? null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function checkNginx(conf = path.join(repoRoot, 'k8s', 'nginx', 'nginx.conf')) {
  const bin = nginxBinary();
  const mime = mimeTypes();
  if (!bin || !mime) return ['no nginx binary or mime.types (run.sh fetches Debian\'s nginx into tests/k8s/.deps)'];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kotte-nginx-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  let text = fs.readFileSync(conf, 'utf8');
  // /tmp first: the paths put in afterwards may themselves be under /tmp.
  const relocate = [
    [/\/tmp\//g, `${dir}/`],
    [/include\s+\/etc\/nginx\/mime\.types;/, `include ${mime};`],
    [/listen\s+8080;/, `listen 127.0.0.1:${port};`],
    [/root\s+\/usr\/share\/nginx\/html;/, `root ${dir}/html;`],
  ];
  for (const [re, to] of relocate) {
    if (!re.test(text)) return [`nginx.conf has no ${re.source} to relocate for the test`];
    text = text.replace(re, to);
  }
  // Node gives children sockets, not pipes, for stdio; nginx cannot open
  // /dev/stderr on a socket, so the logs go to files here.
  text = text.replace(/\/dev\/stderr/g, `${dir}/error.log`).replace(/\/dev\/stdout/g, `${dir}/access.log`);
  fs.mkdirSync(path.join(dir, 'html', 'assets'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'html', 'index.html'), '<!doctype html><div id="root">kotte-spa</div>\n');
  fs.writeFileSync(path.join(dir, 'html', 'assets', 'index-3f2a1b.js'), 'console.log("kotte")\n');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), text);
  const problems = [];
  const t = run(bin, ['-t', '-q', '-c', path.join(dir, 'nginx.conf'), '-p', `${dir}/`, '-e', `${dir}/error.log`]);
  if (t.status !== 0) {
    let log = t.stderr;
    try { log += fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { /* none */ }
    fs.rmSync(dir, { recursive: true, force: true });
    return [`nginx -t: ${log.trim().split('\n')[0]}`];
  }
  const child = spawn(bin, ['-c', path.join(dir, 'nginx.conf'), '-p', `${dir}/`, '-e', `${dir}/error.log`, '-g', 'daemon off;'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  const get = (p) => fetch(base + p, { redirect: 'manual' });
  try {
    let up = false;
    for (let i = 0; i < 50 && !up; i++) {
      try { await get('/healthz'); up = true; } catch { await sleep(100); }
    }
    if (!up) {
      let log = '';
      try { log = fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { /* none */ }
      return [`nginx did not start: ${(stderr + log).trim().split('\n')[0] ?? ''}`];
    }
    const expect = async (p, status, { body, cache, noCache }) => {
      const r = await get(p);
      const text = await r.text();
      const cc = r.headers.get('cache-control') ?? '';
      if (r.status !== status) problems.push(`GET ${p}: ${r.status}, want ${status}`);
      if (body && !text.includes(body)) problems.push(`GET ${p}: not the expected document`);
      if (cache && !cc.includes(cache)) problems.push(`GET ${p}: Cache-Control "${cc}", want ${cache}`);
      if (noCache && /max-age=[1-9]|immutable/.test(cc)) problems.push(`GET ${p}: cached ("${cc}")`);
      if (r.headers.get('x-content-type-options') !== 'nosniff') problems.push(`GET ${p}: no X-Content-Type-Options`);
      if (/\d/.test(r.headers.get('server') ?? '')) problems.push(`GET ${p}: Server header shows the version`);
    };
    await expect('/', 200, { body: 'kotte-spa', cache: 'no-cache' });
    await expect('/index.html', 200, { body: 'kotte-spa', cache: 'no-cache' });
    await expect('/workspace/graphs/g1', 200, { body: 'kotte-spa', cache: 'no-cache' });
    await expect('/assets/index-3f2a1b.js', 200, { body: 'kotte', cache: 'immutable' });
    await expect('/assets/index-missing.js', 404, { noCache: true });
    await expect('/healthz', 200, { body: 'ok' });
    const gz = await fetch(`${base}/assets/index-3f2a1b.js`, { headers: { 'accept-encoding': 'gzip' } });
    if (gz.status !== 200) problems.push('asset not served with Accept-Encoding: gzip');
  } finally {
    child.kill('SIGQUIT');
    await sleep(100);
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return problems;
}
