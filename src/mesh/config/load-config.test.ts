/**
 * loadConfig and watchConfig on real temporary files and real file-system events: every wait is
 * bounded by polling for its condition (at most 5 s), never a fixed sleep.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigInvalidError } from '../../core/errors.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { createMesh, type Mesh } from '../mesh.js'
import { loadConfig, watchConfig } from './load-config.js'

/** Resolves once `condition()` holds; fails after `timeout` ms (real time: fs events are real). */
async function eventually(condition: () => boolean, what: string, timeout = 5000): Promise<void> {
  const start = performance.now()
  while (!condition()) {
    if (performance.now() - start > timeout)
      throw new Error(`timed out after ${timeout}ms waiting for ${what}`)
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setTimeout(r, 5))
  }
}

const yamlFor = (port: number) => `services:\n  users:\n    endpoints: ['http://10.0.0.1:${port}']\n`
const endpointOf = (mesh: Mesh) => mesh.config.services['users']?.endpoints[0]?.url

let dir: string
const meshes: Mesh[] = []
const watchers: Array<{ close(): void }> = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-config-'))
})

afterEach(async () => {
  for (const w of watchers.splice(0)) w.close()
  for (const m of meshes.splice(0)) await m.close()
  await rm(dir, { recursive: true, force: true })
})

describe('loadConfig', () => {
  it('reads YAML (.yaml and .yml) and JSON and returns the config as written', async () => {
    await writeFile(join(dir, 'a.yaml'), yamlFor(8080))
    await writeFile(join(dir, 'b.yml'), `${yamlFor(8081)}    timeout: 2s\n`)
    await writeFile(
      join(dir, 'c.json'),
      JSON.stringify({ services: { users: { endpoints: ['http://x:1'] } } }),
    )
    expect(await loadConfig(join(dir, 'a.yaml'))).toEqual({
      services: { users: { endpoints: ['http://10.0.0.1:8080'] } },
    })
    // The input form: the duration stays as written, no defaults are added.
    expect((await loadConfig(join(dir, 'b.yml'))).services['users']).toEqual({
      endpoints: ['http://10.0.0.1:8081'],
      timeout: '2s',
    })
    expect(await loadConfig(join(dir, 'c.json'))).toEqual({
      services: { users: { endpoints: ['http://x:1'] } },
    })
  })

  it('refuses an invalid config listing every problem with the file and line', async () => {
    const file = join(dir, 'bad.yaml')
    await writeFile(file, 'services:\n  users:\n    endpoints: []\n    timeout: fast\n')
    const error = await loadConfig(file).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigInvalidError)
    const issues = (error as ConfigInvalidError).issues
    expect(issues.map((i) => i.path).sort()).toEqual(['services.users.endpoints', 'services.users.timeout'])
    expect(issues.find((i) => i.path === 'services.users.timeout')?.message).toMatch(
      new RegExp(`^expected .*"fast" \\(${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4\\)$`),
    )
    expect((error as Error).message).toContain(`${file}:3`)
  })

  it('refuses YAML and JSON that do not parse, naming the file and position', async () => {
    await writeFile(join(dir, 'syntax.yaml'), 'services:\n  users: [a\n  b: c\n')
    await writeFile(join(dir, 'syntax.json'), '{"services": {,}}')
    await writeFile(join(dir, 'two.yaml'), 'services: {}\n---\nservices: {}\n')
    const yamlError = await loadConfig(join(dir, 'syntax.yaml')).catch((e: unknown) => e)
    expect(yamlError).toBeInstanceOf(ConfigInvalidError)
    expect((yamlError as Error).message).toMatch(/invalid YAML: .*syntax\.yaml:\d+:\d+\)/)
    const jsonError = await loadConfig(join(dir, 'syntax.json')).catch((e: unknown) => e)
    expect((jsonError as Error).message).toMatch(/invalid JSON: .*syntax\.json\)/)
    const twoDocs = await loadConfig(join(dir, 'two.yaml')).catch((e: unknown) => e)
    expect((twoDocs as Error).message).toMatch(/multiple documents/)
  })

  it('refuses other extensions and passes file-system errors through', async () => {
    await expect(loadConfig(join(dir, 'mesh.toml'))).rejects.toThrow(
      /expected a \.yaml, \.yml or \.json file/,
    )
    await expect(loadConfig(join(dir, 'absent.yaml'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe('watchConfig', () => {
  async function start(options: Parameters<typeof watchConfig>[2] = {}, clock?: ManualClock) {
    const file = join(dir, 'mesh.yaml')
    await writeFile(file, yamlFor(8080))
    const mesh = createMesh(await loadConfig(file), clock ? { clock } : {})
    meshes.push(mesh)
    const updates: unknown[] = []
    const errors: unknown[] = []
    const watcher = watchConfig(mesh, file, {
      debounce: 20,
      onUpdate: (c) => updates.push(c),
      onError: (e) => errors.push(e),
      ...options,
    })
    watchers.push(watcher)
    return { file, mesh, updates, errors, watcher }
  }

  it('applies a valid change to the mesh', async () => {
    const { file, mesh, updates } = await start()
    await writeFile(file, yamlFor(9090))
    await eventually(() => endpointOf(mesh) === 'http://10.0.0.1:9090', 'the change to be applied')
    expect(updates.length).toBeGreaterThanOrEqual(1)
  })

  it('refuses an invalid change, keeps the last good config, and applies the next valid one', async () => {
    const { file, mesh, errors } = await start()
    await writeFile(file, 'services:\n  users:\n    endpoints: []\n')
    // An editor's write may be seen half done (an empty file): wait for the refusal of the whole one.
    const refusal = () =>
      errors.find((e) => e instanceof ConfigInvalidError && e.message.includes('mesh.yaml:3'))
    await eventually(() => refusal() !== undefined, 'the refusal to be reported')
    expect((refusal() as ConfigInvalidError).issues[0]?.path).toBe('services.users.endpoints')
    expect(endpointOf(mesh)).toBe('http://10.0.0.1:8080')
    await writeFile(file, yamlFor(9091))
    await eventually(() => endpointOf(mesh) === 'http://10.0.0.1:9091', 'the next valid change')
  })

  it('follows a file replaced by rename, as editors and ConfigMaps do, again and again', async () => {
    const { file, mesh } = await start()
    for (const port of [9100, 9101, 9102]) {
      const temp = join(dir, `.mesh.yaml.${port}.tmp`)
      await writeFile(temp, yamlFor(port))
      await rename(temp, file)
      await eventually(() => endpointOf(mesh) === `http://10.0.0.1:${port}`, `port ${port} to be applied`)
    }
  })

  it('ignores other files in the directory', async () => {
    const { file, mesh, updates } = await start()
    await writeFile(join(dir, 'other.yaml'), 'not: a config\n')
    await writeFile(file, yamlFor(9200))
    await eventually(() => endpointOf(mesh) === 'http://10.0.0.1:9200', 'the change to be applied')
    expect(updates).toHaveLength(1)
  })

  it('debounces on the mesh clock: nothing is read until the quiet time has passed', async () => {
    const clock = new ManualClock()
    const { file, mesh, updates } = await start({ debounce: 100 }, clock)
    await writeFile(file, yamlFor(9300))
    await writeFile(file, yamlFor(9301))
    await eventually(() => clock.pendingTimers === 1, 'a debounce timer on the manual clock')
    await clock.advance(99)
    expect(updates).toHaveLength(0)
    // Events may still be arriving; advancing past every timer applies the last write once.
    await eventually(() => {
      void clock.advance(100)
      return endpointOf(mesh) === 'http://10.0.0.1:9301'
    }, 'the last write to be applied')
    expect(updates.length).toBeLessThanOrEqual(2)
  })

  it('stops applying changes after close()', async () => {
    const { file, mesh, watcher } = await start()
    watcher.close()
    watcher.close()
    // A second watcher on the same file shows when the change has been seen and applied.
    const sentinel = createMesh(await loadConfig(file))
    meshes.push(sentinel)
    watchers.push(watchConfig(sentinel, file, { debounce: 20 }))
    await writeFile(file, yamlFor(9400))
    await eventually(
      () => endpointOf(sentinel) === 'http://10.0.0.1:9400',
      'the sentinel to apply the change',
    )
    expect(endpointOf(mesh)).toBe('http://10.0.0.1:8080')
  })

  it('reports a removed file and keeps the config', async () => {
    const { file, mesh, errors } = await start()
    await rm(file)
    await eventually(() => errors.length > 0, 'the removal to be reported')
    expect(errors[0]).toMatchObject({ code: 'ENOENT' })
    expect(endpointOf(mesh)).toBe('http://10.0.0.1:8080')
  })
})
