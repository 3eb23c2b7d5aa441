'use strict';

// The runnable examples and the demo: examples/usage.mjs (the README's Usage
// block) against a real server through REDIS_URL, and the demo's message
// when there is no server at all.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startRedis, freePort } = require('./harness');

const repo = path.join(__dirname, '..');

function run(file, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('examples/usage.mjs runs against REDIS_URL and leaves what the README says', async () => {
  const server = await startRedis();
  try {
    const res = await run('examples/usage.mjs', { ...process.env, REDIS_URL: server.url });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /user:123 → \{ name: 'John', email: 'john@example\.com' \}/);
    assert.match(res.stdout, /warmed → 2/);
    assert.match(res.stdout, /scanned → product:1/);
    const raw = await server.raw();
    assert.equal(await raw.cmd('EXISTS', 'fluxor:user:123'), 0, 'cascade removed it');
    assert.equal(await raw.cmd('EXISTS', 'fluxor:product:2'), 1);
    raw.close();
  } finally {
    await server.stop();
  }
});

test('the demo without a server or a redis-server binary: runs on the memory store, says so and how to point it at a server', async () => {
  const env = { PATH: '/nonexistent', REDIS_PORT: String(await freePort()), HOME: process.env.HOME ?? '/' };
  const res = await run('demo/demo.js', env);
  assert.equal(res.code, 0, res.stderr);
  const first = res.stdout.split('\n')[0];
  assert.match(first, /in-process memory store/);
  assert.match(first, /REDIS_URL=redis:\/\/host:6379 npm run demo/);
  assert.doesNotMatch(res.stderr, /Unhandled|ENOENT|\n\s+at /);
});
