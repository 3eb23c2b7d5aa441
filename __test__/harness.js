'use strict';

// Real redis-server processes for the tests: each on a free loopback port,
// stopped by pid when the test file ends (also when it fails). No mocks.

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts redis-server on `port` (a free one by default) with extra args. */
async function startRedis({ port, args = [] } = {}) {
  port = port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...args],
    { stdio: 'ignore' },
  );
  running.add(child);
  // No redis-server on the PATH: a rejection below, not an unhandled 'error' event.
  let spawnError = null;
  child.once('error', (err) => (spawnError = err));
  const exited = new Promise((r) => child.once('exit', r));
  const server = {
    port,
    pid: child.pid,
    dir,
    url: `redis://127.0.0.1:${port}`,
    /** Stops the server by pid and waits for it to exit. */
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, signal);
        await exited;
      }
      running.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    raw: () => rawClient(port),
  };
  for (let i = 0; i < 100; i++) {
    if (spawnError) {
      running.delete(child);
      throw new Error(`cannot start redis-server: ${spawnError.message}`);
    }
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    try {
      const c = await rawClient(port);
      const pong = await c.cmd('PING').catch((err) => err.message);
      c.close();
      // A server that asks for AUTH is up too.
      if (pong === 'PONG' || /^NOAUTH/.test(pong)) return server;
    } catch {}
    await sleep(50);
  }
  await server.stop('SIGKILL');
  throw new Error(`redis-server on port ${port} did not start`);
}

/**
 * Certificates for TLS tests and the bench, made with openssl in `dir`: a CA
 * (`ca.crt`), a server certificate it signed for localhost and 127.0.0.1
 * (`server.crt`, `server.key`), and an unrelated CA (`other-ca.crt`).
 */
function makeCerts(dir) {
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  for (const ca of ['ca', 'other-ca']) {
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.crt`);
  }
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.crt');
}

/**
 * A redis-server with a TLS port beside its plain one (for raw clients):
 * `server.tlsPort`, `server.ca` (PEM Buffer), `server.certs` (the directory,
 * made here unless given, and then removed by `stop`).
 */
async function startTlsRedis({ args = [], port, tlsPort, certs } = {}) {
  const own = !certs;
  if (own) {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-tls-'));
    makeCerts(certs);
  }
  tlsPort = tlsPort ?? (await freePort());
  const server = await startRedis({
    port,
    args: ['--tls-port', String(tlsPort), '--tls-cert-file', path.join(certs, 'server.crt'), '--tls-key-file', path.join(certs, 'server.key'), '--tls-ca-cert-file', path.join(certs, 'ca.crt'), '--tls-auth-clients', 'no', ...args],
  });
  const stop = server.stop;
  return Object.assign(server, {
    tlsPort,
    certs,
    ca: fs.readFileSync(path.join(certs, 'ca.crt')),
    async stop(signal) {
      await stop(signal);
      if (own) fs.rmSync(certs, { recursive: true, force: true });
    },
  });
}

/** A minimal RESP2 client over a raw socket, to read what the module wrote. */
function rawClient(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    let buf = Buffer.alloc(0);
    const waiting = [];
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const parsed = parse(buf, 0);
        if (!parsed) break;
        buf = buf.subarray(parsed.end);
        const w = waiting.shift();
        if (parsed.value instanceof Error) w.reject(parsed.value);
        else w.resolve(parsed.value);
      }
    });
    sock.on('error', (err) => {
      for (const w of waiting.splice(0)) w.reject(err);
      reject(err);
    });
    sock.once('connect', () =>
      resolve({
        cmd(...args) {
          return new Promise((res, rej) => {
            waiting.push({ resolve: res, reject: rej });
            let out = `*${args.length}\r\n`;
            const parts = [];
            for (const a of args) {
              const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
              parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
            }
            sock.write(Buffer.concat([Buffer.from(out), ...parts]));
          });
        },
        close() {
          sock.destroy();
        },
      }),
    );
  });
}

function parse(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, pos);
        if (!item) return null;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`bad RESP type ${type}`);
  }
}

/** Runs `code` (a CommonJS script) in a child Node process. */
function runNode(code, { env = {}, timeout = 20000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', code], {
      cwd: path.join(__dirname, '..'),
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A test file's usual fixture: a fresh server, a raw client to it and an
 * initialized cache with `options` (host and port filled in).
 */
async function openCache(CacheModule, options = {}, serverOptions = {}) {
  const server = await startRedis(serverOptions);
  const raw = await server.raw();
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, ...options });
  await cache.initialize();
  return { server, raw, cache };
}

async function closeCache({ server, raw, cache }) {
  await cache.disconnect();
  raw.close();
  await server.stop();
}

let stores = 0;

/**
 * The engines the shared behaviour tests run on, from one test body each:
 * a real redis-server, and the in-process memory store (a fresh store per
 * opened fixture). `open(CacheModule, options)` resolves { cache, options,
 * close }; `options` makes more instances on the same data.
 */
const ENGINES = [
  {
    name: 'redis',
    async open(CacheModule, options = {}) {
      const server = await startRedis();
      const base = { host: '127.0.0.1', port: server.port };
      const cache = new CacheModule({ ...base, ...options });
      await cache.initialize();
      return { cache, base, close: async () => (await cache.disconnect(), await server.stop()) };
    },
  },
  {
    name: 'memory',
    async open(CacheModule, options = {}) {
      const base = { store: 'memory', memory: { name: `test-${process.pid}-${++stores}` } };
      const cache = new CacheModule({ ...base, ...options });
      await cache.initialize();
      return { cache, base, close: () => cache.disconnect() };
    },
  },
];

module.exports = { startRedis, startTlsRedis, makeCerts, rawClient, freePort, runNode, sleep, openCache, closeCache, ENGINES };
