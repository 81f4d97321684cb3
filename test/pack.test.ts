/**
 * The published package works as users install it: `npm pack`, install the tarball into a fresh
 * project, then import it from ESM and require it from CJS, both entry points ('meshlet' and
 * 'meshlet/testing'). Runs on the built `dist/` (`npm test` builds first; built here if absent).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'

interface PackResult {
  filename: string
  files: Array<{ path: string }>
}

const ESM_CHECK = `
import { withMesh, createMesh, MeshError, TimeoutError, seededRandom as rootRandom } from 'meshlet'
import { ManualClock, seededRandom } from 'meshlet/testing'
const mesh = createMesh({ services: { users: { endpoints: ['http://127.0.0.1:8081'] } } })
const wrapped = withMesh(fetch, mesh)
let refused
try { createMesh({ services: { users: { endpoints: [] } } }) } catch (e) { refused = [e.code, e instanceof MeshError] }
const clock = new ManualClock()
await clock.advance(5)
await mesh.close()
console.log(JSON.stringify({
  withMesh: typeof withMesh, createMesh: typeof createMesh, MeshError: typeof MeshError,
  TimeoutError: typeof TimeoutError, ManualClock: typeof ManualClock, seededRandom: typeof seededRandom,
  wrapped: typeof wrapped, closed: mesh.closed, refused, now: clock.now(),
  random: seededRandom(42).next(), sameRandom: seededRandom === rootRandom,
}))
`

const CJS_CHECK = `
const { withMesh, createMesh, MeshError, TimeoutError } = require('meshlet')
const { ManualClock, seededRandom } = require('meshlet/testing')
const mesh = createMesh({ services: { users: { endpoints: ['http://127.0.0.1:8081'] } } })
const wrapped = withMesh(fetch, mesh)
let refused
try { createMesh({ services: { users: { endpoints: [] } } }) } catch (e) { refused = [e.code, e instanceof MeshError] }
const clock = new ManualClock()
mesh.close().then(() => clock.advance(5)).then(() => {
  console.log(JSON.stringify({
    withMesh: typeof withMesh, createMesh: typeof createMesh, MeshError: typeof MeshError,
    TimeoutError: typeof TimeoutError, ManualClock: typeof ManualClock, seededRandom: typeof seededRandom,
    wrapped: typeof wrapped, closed: mesh.closed, refused, now: clock.now(),
    random: seededRandom(42).next(),
  }))
})
`

describe('the packed tarball', { timeout: 120_000 }, () => {
  let tmp: string
  let project: string
  let packed: PackResult

  beforeAll(async () => {
    if (
      !existsSync(join(root, 'dist', 'index.js')) ||
      !existsSync(join(root, 'dist', 'testing', 'index.cjs'))
    ) {
      await run(npx, ['tsup'], { cwd: root, timeout: 110_000 })
      const schemaScript = join(root, 'scripts', 'emit-json-schema.mjs')
      if (existsSync(schemaScript))
        await run(process.execPath, [schemaScript], { cwd: root, timeout: 30_000 })
    }
    tmp = await mkdtemp(join(tmpdir(), 'meshlet-pack-'))
    const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', tmp], {
      cwd: root,
      timeout: 60_000,
    })
    packed = (JSON.parse(stdout) as PackResult[])[0]!
    project = join(tmp, 'consumer')
    await mkdir(project)
    await writeFile(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '0.0.0', private: true, type: 'module' }),
    )
    await run(
      npm,
      [
        'install',
        join(tmp, packed.filename),
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--offline=false',
      ],
      { cwd: project, timeout: 90_000 },
    )
  }, 120_000)

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true })
  })

  it('contains the built entry points and their types, and no sources or tests', () => {
    const paths = packed.files.map((f) => f.path)
    expect(paths).toEqual(
      expect.arrayContaining([
        'package.json',
        'dist/index.js',
        'dist/index.cjs',
        'dist/index.d.ts',
        'dist/index.d.cts',
        'dist/testing/index.js',
        'dist/testing/index.cjs',
        'dist/testing/index.d.ts',
        'dist/testing/index.d.cts',
      ]),
    )
    expect(
      paths.filter((p) => p.startsWith('src/') || p.startsWith('test/') || p.startsWith('node_modules/')),
    ).toEqual([])
  })

  it('ships every file its exports map points to', async () => {
    const pkg = JSON.parse(
      await readFile(join(project, 'node_modules', 'meshlet', 'package.json'), 'utf8'),
    ) as {
      exports: Record<string, unknown>
    }
    const targets: string[] = []
    const collect = (value: unknown) => {
      if (typeof value === 'string') targets.push(value)
      else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collect(v)
    }
    collect(pkg.exports)
    const missing = targets.filter((t) => !existsSync(join(project, 'node_modules', 'meshlet', t)))
    expect(missing).toEqual([])
  })

  it('imports from ESM: meshlet and meshlet/testing', async () => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', ESM_CHECK], {
      cwd: project,
      timeout: 30_000,
    })
    expect(JSON.parse(stdout)).toEqual({
      withMesh: 'function',
      createMesh: 'function',
      MeshError: 'function',
      TimeoutError: 'function',
      ManualClock: 'function',
      seededRandom: 'function',
      wrapped: 'function',
      closed: true,
      refused: ['CONFIG_INVALID', true],
      now: 5,
      random: expect.any(Number),
      sameRandom: true,
    })
  })

  it('requires from CJS: meshlet and meshlet/testing, with the same behaviour', async () => {
    const script = join(project, 'check.cjs')
    await writeFile(script, CJS_CHECK)
    const [cjs, esm] = await Promise.all([
      run(process.execPath, [script], { cwd: project, timeout: 30_000 }),
      run(process.execPath, ['--input-type=module', '-e', ESM_CHECK], { cwd: project, timeout: 30_000 }),
    ])
    const out = JSON.parse(cjs.stdout) as Record<string, unknown>
    expect(out).toEqual({
      withMesh: 'function',
      createMesh: 'function',
      MeshError: 'function',
      TimeoutError: 'function',
      ManualClock: 'function',
      seededRandom: 'function',
      wrapped: 'function',
      closed: true,
      refused: ['CONFIG_INVALID', true],
      now: 5,
      random: (JSON.parse(esm.stdout) as { random: number }).random,
    })
  })
})
