'use strict';

// "Ships like a well-kept npm package": the package is packed the way it is
// published, installed into a fresh project from the tarballs, and used from
// there -- require, import, TypeScript and every JavaScript block of the
// README, against a real redis-server on a free loopback port.
//
// 1. `npm pack` of the repo: exactly the files the package needs, small.
// 2. The platform package, built the napi-rs way (npm/<platform>/package.json
//    plus the built `cache-module.<platform>.node`), packed too.
// 3. A fresh CommonJS project installs both tarballs. The main package's
//    optionalDependencies name every platform package (as `napi prepublish`
//    writes them). This platform's is satisfied by the tarball (same name
//    and version); online, npm looks the others up in the registry, where
//    the unpublished ones 404 and are skipped as failed optional
//    dependencies (checked with npm 11). The install runs with --offline and
//    a throwaway cache so the test needs no network at all: the lookups then
//    fail with ENOTCACHED and are skipped the same way. The test checks that
//    the addon actually loaded is the one from the platform package.
// 4. require / import / tsc (three setups, strict, no @types/node), and the
//    deliberate misuses in __test__/package/types.ts really error.
// 5. Every ```javascript block of README.md runs unchanged from the installed
//    package (see the prelude in blockScript for how it reaches the server).
//
// Set FLUXOR_README=<path> to run the README blocks of another file, and
// FLUXOR_KEEP_TMP=1 to keep the temporary directory for a look.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const vm = require('node:vm');
const { startRedis } = require('./harness');

const repo = path.join(__dirname, '..');
const fixtures = path.join(__dirname, 'package');
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
const tscBin = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
const readmePath = process.env.FLUXOR_README ? path.resolve(process.env.FLUXOR_README) : path.join(repo, 'README.md');
const blocks = readmeBlocks(fs.readFileSync(readmePath, 'utf8'));

const BLOCK_TIMEOUT_MS = 20_000;
const MAX_PACKED_BYTES = 200_000;
const MAX_UNPACKED_BYTES = 800_000;

// ---- helpers -----------------------------------------------------------------

/** The environment of a fresh shell: nothing from npm, node:test or the Redis/napi-rs variables. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|NODE_TEST_CONTEXT$|NODE_OPTIONS$|NAPI_RS_|REDIS_)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs a command; resolves { code, signal, stdout, stderr, timedOut }. */
function run(cmd, args, { cwd, env = cleanEnv(), timeout = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' && cmd === 'npm' });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeout);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function show(res) {
  return `exit ${res.code}${res.signal ? ` (${res.signal})` : ''}${res.timedOut ? ' after timing out' : ''}\n--- stdout ---\n${res.stdout}\n--- stderr ---\n${res.stderr}`;
}

async function npm(args, cwd) {
  const res = await run('npm', args, { cwd });
  assert.equal(res.code, 0, `npm ${args.join(' ')} in ${cwd} failed: ${show(res)}`);
  return res;
}

/** `npm pack` of `dir` into `dest`; resolves npm's JSON description of the tarball. */
async function pack(dir, dest) {
  const res = await npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], dir);
  const [info] = JSON.parse(res.stdout.slice(res.stdout.indexOf('[')));
  return { ...info, tarball: path.join(dest, info.filename) };
}

function isMusl() {
  // As binding.js decides it.
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {}
  const header = process.report?.getReport?.().header;
  return header ? !header.glibcVersionRuntime : false;
}

/** The npm/<dir> (napi-rs platformArchABI) of this machine. */
function currentPlatformDir() {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** npm/<dir> name, os, cpu and libc of a napi target triple. */
function platformOfTarget(triple) {
  const [archPart, ...rest] = triple.split('-');
  const cpu = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32' }[archPart];
  const system = rest.join('-');
  const linux = /^unknown-linux-(gnu|musl)$/.exec(system);
  if (cpu && linux) return { dir: `linux-${cpu}-${linux[1]}`, os: 'linux', cpu, libc: linux[1] === 'gnu' ? 'glibc' : 'musl' };
  if (cpu && system === 'apple-darwin') return { dir: `darwin-${cpu}`, os: 'darwin', cpu };
  if (cpu && system === 'pc-windows-msvc') return { dir: `win32-${cpu}-msvc`, os: 'win32', cpu };
  assert.fail(`package.json napi.targets has ${triple}, which this test does not know how to map to an npm/<dir>`);
}

function filesUnder(dir, base = dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(full, base) : [path.relative(base, full).split(path.sep).join('/')];
  });
}

const tsc = (config, cwd) => run(process.execPath, [tscBin, '-p', config, '--pretty', 'false'], { cwd });

// ---- README blocks -----------------------------------------------------------

/** Every ```javascript (or ```js) block, with the heading above it and its line. */
function readmeBlocks(markdown) {
  const lines = markdown.split('\n');
  const found = [];
  let heading = '(top)';
  for (let i = 0; i < lines.length; i++) {
    const fence = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (fence) {
      let end = i + 1;
      while (end < lines.length && !lines[end].trim().startsWith(fence[1])) end++;
      if (/^(javascript|js)$/i.test(fence[2])) {
        found.push({ heading, line: i + 2, code: lines.slice(i + 1, end).join('\n') });
      }
      i = end;
      continue;
    }
    const h = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(lines[i]);
    if (h) heading = h[1];
  }
  return found;
}

/** Whether a block uses `cache` without creating it. */
const needsPreludeCache = (code) => /\bcache\b/.test(code) && !/\b(?:const|let|var)\s+cache\b/.test(code);

const wrapBody = (body) => `(async (require) => {\n${body}\n})`;

/**
 * The block as it will run. A README block is one snippet, but some declare
 * the same name twice to show alternatives (the seed README's "Error
 * Handling" has two `const data`), which is a SyntaxError in one scope. Such
 * a block is split into its top-level statement groups -- a new group starts
 * at a statement that declares a name the current group already declared --
 * and each group runs in its own `{ }` scope, in order. The text of every
 * statement stays unchanged.
 */
function prepareBlock(code) {
  try {
    new vm.Script(wrapBody(code));
    return { body: code, split: false };
  } catch (err) {
    if (!/already been declared/.test(err.message)) return { body: code, split: false };
  }
  const ts = require('typescript');
  const file = ts.createSourceFile('block.js', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const declared = (stmt) => {
    const names = [];
    const bind = (name) => {
      if (ts.isIdentifier(name)) names.push(name.text);
      else for (const el of name.elements) if (!ts.isOmittedExpression(el)) bind(el.name);
    };
    if (ts.isVariableStatement(stmt)) for (const d of stmt.declarationList.declarations) bind(d.name);
    else if ((ts.isFunctionDeclaration(stmt) || ts.isClassDeclaration(stmt)) && stmt.name) names.push(stmt.name.text);
    return names;
  };
  const groups = [];
  let current = null;
  for (const stmt of file.statements) {
    const names = declared(stmt);
    if (!current || names.some((n) => current.names.has(n))) {
      current = { start: stmt.pos, end: stmt.end, names: new Set() };
      groups.push(current);
    }
    current.end = stmt.end;
    for (const n of names) current.names.add(n);
  }
  const body = groups.map((g) => `{\n${code.slice(g.start, g.end).replace(/^\n+/, '')}\n}`).join('\n');
  return { body, split: groups.length > 1 };
}

/**
 * The child script for one block. The block passes `host: 'localhost', port:
 * 6379` (and `password: 'secret'`) explicitly, so REDIS_HOST/REDIS_PORT would
 * not reach it, and a real server may listen on 6379 here. Instead, inside the
 * block `require('@fluxor/cache-module')` returns a subclass of the installed
 * class whose constructor replaces host and port with the test server's and
 * drops password, url and the Sentinel options (the test server has none); every other option is
 * kept as written (a memory store's options all are: it reaches no server). Instances not made through the subclass refuse to connect,
 * so nothing but the test server is ever reached. The prelude also defines
 * what the README leaves to the reader (userId, productId, fetchAllProducts,
 * fetchFromDatabase) and, for blocks that use `cache` without creating it, an
 * initialized `cache`. The script never calls disconnect() or process.exit():
 * the process has to end by itself, as the README promises (a block that only
 * constructs, or leaves a connection idle, must not hang).
 */
function blockScript(block, prepared) {
  const needsCache = needsPreludeCache(block.code);
  return `'use strict';
// ${path.basename(readmePath)} line ${block.line} ("${block.heading}"), run by __test__/package.test.js.
const __Installed = require('@fluxor/cache-module');
const __target = { host: '127.0.0.1', port: Number(process.env.FLUXOR_TEST_PORT) };
const __redirected = new WeakSet();
class CacheModule extends __Installed {
  constructor(options) {
    // The memory store reaches no server: kept as written.
    const memory = options?.store === 'memory' || String(options?.url ?? '').toLowerCase().startsWith('memory://');
    const redirected = memory ? options : { ...options, ...__target };
    if (!memory) {
      delete redirected.password;
      delete redirected.url;
      for (const name of ['sentinels', 'name', 'sentinelUsername', 'sentinelPassword']) delete redirected[name];
    }
    super(redirected);
    __redirected.add(this);
  }
}
CacheModule.CacheModule = CacheModule;
CacheModule.default = CacheModule;
const __initialize = __Installed.prototype.initialize;
__Installed.prototype.initialize = function initialize(...args) {
  if (!__redirected.has(this)) throw new Error('package.test.js: an instance not made through the redirecting subclass tried to connect');
  return __initialize.apply(this, args);
};
const __require = (id) => (id === '@fluxor/cache-module' ? CacheModule : require(id));

const userId = 123;
const productId = 'sku-1';
async function fetchAllProducts() {
  return [
    { id: 1, name: 'Product 1', price: 99.99 },
    { id: 2, name: 'Product 2', price: 149.99 },
  ];
}
async function fetchFromDatabase() {
  return { from: 'database' };
}

(async () => {
${needsCache ? "  const cache = new CacheModule({ host: 'localhost', port: 6379 });\n  await cache.initialize();\n" : ''}  await ${wrapBody(prepared.body)}(__require);
})().catch((err) => {
  process.stderr.write('README block failed: ' + require('node:util').inspect(err) + '\\n');
  process.exitCode = 1;
});
`;
}

// ---- the test ------------------------------------------------------------------

describe('the package as installed from its tarballs', { timeout: 300_000 }, () => {
  const platformDir = currentPlatformDir();
  const binaryName = pkg.napi.binaryName;
  const addonFile = `${binaryName}.${platformDir}.node`;
  const platformName = `${pkg.napi.packageName}-${platformDir}`;
  let tmp;
  let project;
  let mainPack;
  let platformPack;
  let server;
  let raw;

  before(async () => {
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-package-')));
    project = path.join(tmp, 'project');
    const platformStage = path.join(tmp, 'platform');
    fs.mkdirSync(project);
    fs.mkdirSync(platformStage);

    const addonPath = path.join(repo, addonFile);
    assert.ok(fs.existsSync(addonPath), `${addonFile} is missing from the repo root: build the addon first (npm run build)`);
    const npmDir = path.join(repo, 'npm', platformDir);
    assert.ok(fs.existsSync(path.join(npmDir, 'package.json')), `npm/${platformDir}/package.json is missing`);
    // What `napi artifacts` + `napi prepublish` publish for this platform.
    for (const f of ['package.json', 'README.md']) {
      if (fs.existsSync(path.join(npmDir, f))) fs.copyFileSync(path.join(npmDir, f), path.join(platformStage, f));
    }
    fs.copyFileSync(addonPath, path.join(platformStage, addonFile));

    [mainPack, platformPack, server] = await Promise.all([pack(repo, tmp), pack(platformStage, tmp), startRedis()]);
    raw = await server.raw();

    fs.writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'fluxor-package-test', version: '1.0.0', private: true, type: 'commonjs' }, null, 2),
    );
    for (const f of fs.readdirSync(fixtures)) fs.copyFileSync(path.join(fixtures, f), path.join(project, f));
    await npm(
      ['install', '--offline', '--cache', path.join(tmp, 'npm-cache'), '--no-audit', '--no-fund', mainPack.tarball, platformPack.tarball],
      project,
    );
  });

  after(async () => {
    raw?.close();
    await server?.stop();
    if (tmp && !process.env.FLUXOR_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    else if (tmp) process.stderr.write(`kept ${tmp}\n`);
  });

  it('packs exactly the files the package needs, and is small', () => {
    const libFiles = filesUnder(path.join(repo, 'lib'))
      .filter((f) => f.endsWith('.js'))
      .map((f) => `lib/${f}`);
    const expected = [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'index.js',
      'index.mjs',
      'index.d.ts',
      'index.d.mts',
      'keyv.mjs',
      'keyv.d.ts',
      'keyv.d.mts',
      'binding.js',
      'binding.d.ts',
      ...libFiles,
    ].sort();
    const packed = mainPack.files.map((f) => f.path).sort();
    assert.deepEqual(packed, expected);
    for (const f of packed) {
      assert.doesNotMatch(f, /^(src|target|__test__|bench|demo|npm|node_modules|\.ci)\/|\.node$|\.tgz$/, `${f} must not be published`);
    }
    assert.ok(mainPack.size < MAX_PACKED_BYTES, `the tarball is ${mainPack.size} bytes (limit ${MAX_PACKED_BYTES})`);
    assert.ok(mainPack.unpackedSize < MAX_UNPACKED_BYTES, `unpacked ${mainPack.unpackedSize} bytes (limit ${MAX_UNPACKED_BYTES})`);
    assert.equal(mainPack.name, pkg.name);
    assert.equal(mainPack.version, pkg.version);
  });

  it('has a manifest whose entry points exist and whose platform packages match npm/', () => {
    const installedDir = path.join(project, 'node_modules', ...pkg.name.split('/'));
    const manifest = JSON.parse(fs.readFileSync(path.join(installedDir, 'package.json'), 'utf8'));
    const packed = new Set(mainPack.files.map((f) => f.path));
    const targets = [manifest.main, manifest.types];
    const walk = (v) => (typeof v === 'string' ? targets.push(v) : Object.values(v).forEach(walk));
    walk(manifest.exports);
    for (const t of targets) assert.ok(packed.has(path.posix.normalize(t)), `package.json points at ${t}, which is not in the tarball`);
    assert.equal(manifest.license, 'MIT');
    assert.match(fs.readFileSync(path.join(installedDir, 'LICENSE'), 'utf8'), /MIT License[\s\S]*Fluxor/);
    assert.match(fs.readFileSync(path.join(installedDir, 'CHANGELOG.md'), 'utf8'), new RegExp(`## ${pkg.version.replace(/\./g, '\\.')}`));
    assert.ok(manifest.engines?.node, 'engines.node is set');
    assert.equal(manifest.private, undefined);

    // What `napi prepublish` would write, and the npm/ dirs it publishes.
    const expectedOptional = {};
    for (const triple of manifest.napi.targets) {
      const p = platformOfTarget(triple);
      const name = `${manifest.napi.packageName}-${p.dir}`;
      expectedOptional[name] = manifest.version;
      const sub = JSON.parse(fs.readFileSync(path.join(repo, 'npm', p.dir, 'package.json'), 'utf8'));
      const where = `npm/${p.dir}/package.json`;
      assert.equal(sub.name, name, where);
      assert.equal(sub.version, manifest.version, `${where}: version`);
      assert.equal(sub.main, `${binaryName}.${p.dir}.node`, `${where}: main`);
      assert.deepEqual(sub.files, [sub.main], `${where}: files`);
      assert.deepEqual(sub.os, [p.os], `${where}: os`);
      assert.deepEqual(sub.cpu, [p.cpu], `${where}: cpu`);
      assert.deepEqual(sub.libc, p.libc && [p.libc], `${where}: libc`);
      assert.equal(sub.license, manifest.license, `${where}: license`);
      assert.deepEqual(sub.engines, manifest.engines, `${where}: engines`);
    }
    assert.deepEqual(manifest.optionalDependencies, expectedOptional);
  });

  it('installs the platform package and loads the addon from it', () => {
    const scope = path.join(project, 'node_modules', pkg.name.split('/')[0]);
    const [, mainBase] = pkg.name.split('/');
    assert.deepEqual(fs.readdirSync(scope).sort(), [mainBase, `${mainBase}-${platformDir}`].sort(), 'only this platform package is installed');
    const platformFiles = platformPack.files.map((f) => f.path).sort();
    assert.deepEqual(platformFiles, ['README.md', addonFile, 'package.json'].filter((f) => f !== 'README.md' || fs.existsSync(path.join(repo, 'npm', platformDir, f))).sort());
    assert.deepEqual(fs.readdirSync(path.join(scope, `${mainBase}-${platformDir}`)).sort(), platformFiles);
    assert.equal(fs.readdirSync(path.join(scope, mainBase)).filter((f) => f.endsWith('.node')).length, 0, 'the main package carries no addon');
    assert.equal(
      fs.statSync(path.join(scope, `${mainBase}-${platformDir}`, addonFile)).size,
      fs.statSync(path.join(tmp, 'platform', addonFile)).size,
      'the installed addon is the one packed from the repo',
    );
  });

  it('require() gives the class, also as .CacheModule and .default', async () => {
    const res = await run(process.execPath, ['smoke.cjs'], { cwd: project, env: cleanEnv({ FLUXOR_TEST_PORT: String(server.port) }), timeout: 20_000 });
    assert.equal(res.code, 0, show(res));
    const report = JSON.parse(res.stdout);
    assert.equal(report.type, 'function');
    assert.equal(report.name, 'CacheModule');
    assert.equal(report.namedIsSame, true);
    assert.equal(report.defaultIsSame, true);
    assert.equal(report.isEventEmitter, true);
    assert.equal(report.keyPrefix, 'smoke-cjs:');
    assert.equal(report.packageJson, pkg.name);
    assert.equal(report.entry, path.join(project, 'node_modules', ...pkg.name.split('/'), 'index.js'));
    assert.deepEqual(report.addons, [path.join(project, 'node_modules', ...platformName.split('/'), addonFile)]);
    assert.deepEqual(report.roundTrip, { from: 'cjs' });
  });

  it('import gives the same class as default and named export', async () => {
    const res = await run(process.execPath, ['smoke.mjs'], { cwd: project, env: cleanEnv({ FLUXOR_TEST_PORT: String(server.port) }), timeout: 20_000 });
    assert.equal(res.code, 0, show(res));
    const report = JSON.parse(res.stdout);
    assert.equal(report.type, 'function');
    assert.equal(report.name, 'CacheModule');
    assert.equal(report.namedIsSame, true);
    assert.equal(report.requireIsSame, true);
    assert.deepEqual(report.namespaceKeys, ['CacheError', 'CacheModule', 'default', 'isCacheError']);
    assert.equal(report.isEventEmitter, true);
    assert.equal(report.entry, 'file://' + path.join(project, 'node_modules', ...pkg.name.split('/'), 'index.mjs').split(path.sep).join('/'));
    assert.deepEqual(report.addons, [path.join(project, 'node_modules', ...platformName.split('/'), addonFile)]);
    assert.deepEqual(report.roundTrip, { from: 'esm' });
  });

  it('type-checks every public method and option without @types/node (nodenext, commonjs, bundler)', async () => {
    assert.ok(!fs.existsSync(path.join(project, 'node_modules', '@types')), 'the project has no @types packages');
    const configs = ['tsconfig.json', 'tsconfig.commonjs.json', 'tsconfig.bundler.json'];
    const results = await Promise.all(configs.map((c) => tsc(c, project)));
    results.forEach((res, i) => assert.equal(res.code, 0, `tsc -p ${configs[i]}: ${show(res)}`));
  });

  it('rejects every misuse marked @ts-expect-error in types.ts (the types bite)', async () => {
    const lines = fs.readFileSync(path.join(project, 'types.ts'), 'utf8').split('\n');
    // The misuse after each marker runs up to the first line ending in ';'.
    const ranges = [];
    lines.forEach((line, i) => {
      if (!/^\s*\/\/ @ts-expect-error/.test(line)) return;
      let end = i + 1;
      while (end < lines.length - 1 && !/;\s*$/.test(lines[end])) end++;
      ranges.push({ marker: i + 1, from: i + 2, to: end + 1, text: lines.slice(i, end + 1).join('\n') });
      lines[i] = line.replace('// @ts-expect-error', '// (marker removed)');
    });
    assert.ok(ranges.length >= 1, 'types.ts has at least one @ts-expect-error misuse');
    fs.writeFileSync(path.join(project, 'types-unmarked.ts'), lines.join('\n'));
    fs.writeFileSync(path.join(project, 'tsconfig.unmarked.json'), JSON.stringify({ extends: './tsconfig.json', files: ['types-unmarked.ts'] }));
    const res = await tsc('tsconfig.unmarked.json', project);
    assert.notEqual(res.code, 0, `tsc accepted the misuses without their markers: ${show(res)}`);
    const errorLines = [...res.stdout.matchAll(/^types-unmarked\.ts\((\d+),\d+\): error TS\d+/gm)].map((m) => Number(m[1]));
    for (const r of ranges) {
      assert.ok(
        errorLines.some((l) => l >= r.from && l <= r.to),
        `types.ts line ${r.marker}: without the marker this compiles, so the types do not catch it:\n${r.text}`,
      );
    }
    const stray = errorLines.filter((l) => !ranges.some((r) => l >= r.from && l <= r.to));
    assert.deepEqual(stray, [], `errors outside the marked misuses:\n${res.stdout}`);
  });

  describe(`README blocks (${path.relative(repo, readmePath)})`, () => {
    it('has at least one javascript block', () => assert.ok(blocks.length > 0));

    blocks.forEach((block, n) => {
      it(`block ${n + 1}: line ${block.line}, "${block.heading}"`, async () => {
        const prepared = prepareBlock(block.code);
        const file = path.join(project, `readme-block-${n + 1}.cjs`);
        fs.writeFileSync(file, blockScript(block, prepared));
        await raw.cmd('FLUSHALL');
        const connectionsBefore = connectionsReceived(await raw.cmd('INFO', 'stats'));
        const res = await run(process.execPath, [file], {
          cwd: project,
          env: cleanEnv({ FLUXOR_TEST_PORT: String(server.port), REDIS_HOST: '127.0.0.1', REDIS_PORT: String(server.port) }),
          timeout: BLOCK_TIMEOUT_MS,
        });
        const context = () =>
          `${path.basename(readmePath)} line ${block.line} ("${block.heading}")${prepared.split ? ', run as separately scoped statement groups' : ''}:\n` +
          `${block.code}\n${res.timedOut ? `--- did not end by itself within ${BLOCK_TIMEOUT_MS} ms ---\n` : ''}${show(res)}`;
        assert.ok(res.code === 0 && !res.timedOut, context());
        // A block on the memory store reaches no server at all.
        const memoryStore = /store: 'memory'|url: 'memory:/.test(block.code);
        if (!memoryStore && (/\binitialize\s*\(/.test(block.code) || needsPreludeCache(block.code))) {
          // The redirection at work: the block connected, and to the test
          // server (the raw client's own connection was counted before).
          const connectionsAfter = connectionsReceived(await raw.cmd('INFO', 'stats'));
          assert.ok(connectionsAfter > connectionsBefore, `the block did not connect to the test server:\n${context()}`);
        }
      });
    });
  });
});

function connectionsReceived(info) {
  return Number(/total_connections_received:(\d+)/.exec(info)[1]);
}
