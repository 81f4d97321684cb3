/**
 * Issue 23, the config side: each reproduction measured on main before the fix is a test here.
 * Hostile config (files, objects, resolver answers) is refused with a `ConfigInvalidError` naming
 * the path (and the file), in bounded time, never a crash, a raw error, a misroute or prototype
 * pollution. Files are real temporary files; calls run on an in-memory transport.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { HttpRequest } from '../src/adapters/fetch/request.js'
import { ConfigInvalidError, isMeshError } from '../src/core/errors.js'
import type { Handler } from '../src/core/handler.js'
import { type MeshConfig, parseConfig } from '../src/mesh/config/config.js'
import { loadConfig, watchConfig } from '../src/mesh/config/load-config.js'
import { fromIstio } from '../src/mesh/istio/from-istio.js'
import { createMesh, type Mesh, type MeshOptions } from '../src/mesh/mesh.js'
import { withMesh } from '../src/mesh/with-mesh.js'
import { ManualClock } from '../src/testing/manual-clock.js'

let dir: string
const meshes: Mesh[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-hardening-'))
})

afterEach(async () => {
  for (const m of meshes.splice(0)) await m.close({ force: true })
  await rm(dir, { recursive: true, force: true })
})

const mesh = (config: unknown, options: MeshOptions = {}): Mesh => {
  const m = createMesh(config as MeshConfig, options)
  meshes.push(m)
  return m
}

/** The error `fn` throws (the test fails when it throws nothing). */
function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

/** The issues of the `ConfigInvalidError` that `createMesh(config)` throws. */
function refused(config: unknown): readonly { path: string; message: string }[] {
  const error = thrown(() => mesh(config))
  expect(error).toBeInstanceOf(ConfigInvalidError)
  return (error as ConfigInvalidError).issues
}

const URL1 = 'http://127.0.0.1:8081'
const users = { endpoints: [URL1] }
const sparse = <T>(length: number, items: Record<number, T>): T[] => {
  const a = new Array<T>(length)
  for (const [i, v] of Object.entries(items)) a[Number(i)] = v
  return a
}

/** An in-memory transport answering 200 and counting what reached it, by method. */
function counting(): { transport: Handler<HttpRequest, Response>; sent: string[] } {
  const sent: string[] = []
  return {
    sent,
    transport: async (req) => {
      sent.push(req.method)
      return new Response('ok', { status: 200, headers: { 'x-upstream': 'yes' } })
    },
  }
}

describe('the loader: depth, aliases, BOM, every failure typed and naming the file', () => {
  const deepJson = (depth: number) =>
    `{"services": {"users": {"endpoints": ["${URL1}"], "labels": ${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}}}`

  it('refuses a JSON file nested 2,000 deep, every time, with the file and line', async () => {
    const file = join(dir, 'deep.json')
    await writeFile(file, deepJson(2000))
    // On main the second load aborted the process (SIGABRT in the YAML re-parse for lines).
    for (let i = 0; i < 5; i++) {
      const error = await loadConfig(file).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigInvalidError)
      expect((error as Error).message).toContain(`nested deeper than 64 levels (${file}:1)`)
    }
  })

  it('refuses YAML nested 2,000 deep in flow and block style', async () => {
    const flow = join(dir, 'flow.yaml')
    const block = join(dir, 'block.yaml')
    await writeFile(flow, `services:\n  users: ${'['.repeat(2000)}${']'.repeat(2000)}\n`)
    await writeFile(block, `services:\n  users:\n    ${'- '.repeat(2000)}1\n`)
    for (const file of [flow, block, flow, block]) {
      const error = await loadConfig(file).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigInvalidError)
      expect((error as Error).message).toMatch(/nested deeper than 64 levels \(.*\.yaml:[23]\)/)
    }
  })

  it('keeps a nested but valid config (the schema is 6 levels deep) working', async () => {
    const file = join(dir, 'ok.yaml')
    await writeFile(
      file,
      `services:\n  users:\n    endpoints: ['${URL1}']\nroutes:\n  - match: [{ headers: { x-a: { exact: 'b' } } }]\n    route: [{ service: users }]\n`,
    )
    expect((await loadConfig(file)).routes?.[0]?.match?.[0]?.headers?.['x-a']).toEqual({ exact: 'b' })
  })

  it('watchConfig survives two deep edits in a row, reports both, and keeps the last good config', async () => {
    const file = join(dir, 'mesh.json')
    await writeFile(file, JSON.stringify({ services: { users } }))
    const clock = new ManualClock()
    const m = mesh(await loadConfig(file), { clock })
    const errors: unknown[] = []
    const watcher = watchConfig(m, file, { debounce: 10, onError: (e) => errors.push(e) })
    try {
      for (let edit = 1; edit <= 2; edit++) {
        await writeFile(file, deepJson(2000 + edit))
        const start = performance.now()
        while (errors.length < edit) {
          if (performance.now() - start > 5000) throw new Error(`edit ${edit} was not reported`)
          await clock.advance(10)
          await new Promise((r) => setTimeout(r, 5))
        }
      }
      expect(errors).toHaveLength(2)
      for (const e of errors) expect(e).toBeInstanceOf(ConfigInvalidError)
      expect(m.config.services.users?.endpoints[0]?.url).toBe(URL1)
    } finally {
      watcher.close()
    }
  })

  it('refuses a YAML alias bomb ("billion laughs") with ConfigInvalidError naming the file', async () => {
    const file = join(dir, 'bomb.yaml')
    const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for (const [name, prev] of [
      ['b', 'a'],
      ['c', 'b'],
      ['d', 'c'],
      ['e', 'd'],
      ['f', 'e'],
      ['g', 'f'],
    ]) {
      lol.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`)
    }
    await writeFile(file, `${lol.join('\n')}\n`)
    const error = await loadConfig(file).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigInvalidError)
    expect((error as Error).message).toMatch(/invalid YAML: Excessive alias count.*bomb\.yaml\)/)
  })

  it('refuses YAML collections that are no JSON object (!!omap, !!set) rather than reading them as {}', async () => {
    const file = join(dir, 'omap.yaml')
    await writeFile(file, `services: !!omap\n  - users:\n      endpoints: ['${URL1}']\n`)
    const error = await loadConfig(file).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigInvalidError)
    expect((error as ConfigInvalidError).issues[0]?.message).toBe(`expected an object, got Map (${file}:2)`)
  })

  it('accepts a JSON or YAML file that starts with a UTF-8 byte order mark', async () => {
    await writeFile(join(dir, 'bom.json'), `\ufeff${JSON.stringify({ services: { users } })}`)
    await writeFile(join(dir, 'bom.yaml'), `\ufeffservices:\n  users:\n    endpoints: ['${URL1}']\n`)
    expect(await loadConfig(join(dir, 'bom.json'))).toEqual({ services: { users } })
    expect(await loadConfig(join(dir, 'bom.yaml'))).toEqual({ services: { users } })
  })
})

describe('control-plane resources: the same bounds on depth and aliases', () => {
  it('refuses an Istio resource nested 2,000 deep, every time, without a crash', () => {
    const text = `apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: ${'['.repeat(2000)}${']'.repeat(2000)}\n`
    for (let i = 0; i < 3; i++) {
      expect(() => fromIstio(text)).toThrow(/fromIstio: nested deeper than 64 levels at line 3/)
    }
  })

  it('refuses an alias bomb in an Istio resource as invalid YAML', () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for (const [name, prev] of ['ba', 'cb', 'dc', 'ed', 'fe'])
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`)
    expect(() => fromIstio(lines.join('\n'))).toThrow(/document 1 is not valid YAML: Excessive alias count/)
  })
})

describe('unknown keys: suggestions only for short keys, messages cut', () => {
  it('refuses a 1 MB unknown key in under 50 ms with a message of bounded length', () => {
    const key = 'x'.repeat(1_000_000)
    const config = { services: { users: { ...users, [key]: 1 } } }
    thrown(() => createMesh(config as unknown as MeshConfig)) // warm-up
    const start = performance.now()
    const issues = refused(config)
    expect(performance.now() - start).toBeLessThan(50)
    expect(issues).toHaveLength(1)
    expect(issues[0]?.path).toBe('services.users')
    expect(issues[0]?.message).toMatch(/^unknown key "x{63}…"$/)
  })

  it('refuses a 200 KB key near a real one in under 50 ms, and still suggests for short typos', () => {
    const key = `timeout${'t'.repeat(200_000)}`
    const start = performance.now()
    const issues = refused({ services: { users: { ...users, [key]: 1 } } })
    expect(performance.now() - start).toBeLessThan(50)
    expect(issues[0]?.message.length).toBeLessThan(100)
    expect(refused({ services: { users: { ...users, timout: 1 } } })[0]?.message).toBe(
      'unknown key "timout" (did you mean "timeout"?)',
    )
  })

  it('cuts a long record key in the path and a long value in the message', () => {
    const name = 'h'.repeat(10_000)
    const issues = refused({ services: { users: { ...users, labels: {}, subsets: { [name]: 1 } } } })
    for (const issue of issues) {
      expect(issue.path.length).toBeLessThan(120)
      expect(issue.message.length).toBeLessThan(300)
    }
  })

  it('lists at most 100 problems and counts the rest', () => {
    const services = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`s${i}`, {}]))
    const issues = refused({ services })
    expect(issues).toHaveLength(101)
    expect(issues[100]?.message).toBe('and 400 more problems')
  })
})

describe('prototype names: config maps are looked up by own keys only', () => {
  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty'])(
    'refuses a route to service %s that is not defined, naming the path',
    (name) => {
      const issues = refused({ services: { users }, routes: [{ route: [{ service: name }] }] })
      expect(issues.map((i) => i.path)).toEqual(['routes[0].route[0].service'])
      expect(issues[0]?.message).toBe(`expected a configured service ("users"), got "${name}"`)
    },
  )

  it('refuses a route to toString with a subset (a raw TypeError on main)', () => {
    const issues = refused({
      services: { users },
      routes: [{ route: [{ service: 'toString', subset: 'v1' }] }],
    })
    expect(issues.map((i) => i.path)).toEqual(['routes[0].route[0].service'])
  })

  it('refuses a subset named constructor that the service does not define', () => {
    const issues = refused({
      services: { users: { ...users, subsets: { v1: { version: 'v1' } } } },
      routes: [
        {
          route: [{ service: 'users', subset: 'constructor' }],
          mirror: { service: 'users', subset: 'toString' },
        },
      ],
    })
    expect(issues.map((i) => i.path)).toEqual(['routes[0].route[0].subset', 'routes[0].mirror.subset'])
  })

  it('refuses routes to services or subsets that do not exist, and names that differ only in case', () => {
    const issues = refused({
      services: { users, Users: users, orders: { ...users, subsets: { v1: {}, V1: {} } } },
      routes: [{ route: [{ service: 'payments' }, { service: 'orders', subset: 'v2' }] }],
    })
    expect(issues.map((i) => i.path)).toEqual([
      'services.Users',
      'services.orders.subsets.V1',
      'routes[0].route[0].service',
      'routes[0].route[1].subset',
    ])
  })

  it('answers a real Response from the static fallback of a service named toString', async () => {
    const m = mesh(
      {
        services: {
          toString: {
            ...users,
            retry: { attempts: 1 },
            fallback: { on: ['ERROR'], body: 'down', headers: { 'x-fallback': 'yes' } },
          },
        },
      },
      {
        fallbacks: {},
        httpTransport: async () => {
          throw new Error('refused')
        },
      },
    )
    const res = await withMesh(fetch, m)('http://tostring/x')
    expect(res).toBeInstanceOf(Response)
    expect(res.status).toBe(503)
    expect(await res.text()).toBe('down')
    expect(res.headers.get('x-fallback')).toBe('yes')
  })

  it('is not polluted by "__proto__" keys anywhere in a config', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort()
    const config = JSON.parse(`{
      "__proto__": { "polluted": 1 },
      "services": {
        "users": {
          "endpoints": [{ "url": "${URL1}", "labels": { "__proto__": "x", "version": "v1" } }],
          "subsets": { "v1": { "__proto__": "x" } },
          "fallback": { "headers": { "__proto__": "x" } },
          "__proto__": { "polluted": 2 }
        }
      },
      "routes": [{ "route": [{ "service": "users" }], "requestHeaders": { "set": { "__proto__": "y" } } }]
    }`)
    const issues = refused(config)
    expect(issues.map((i) => i.message)).toEqual(['unknown key "__proto__"', 'unknown key "__proto__"'])
    Reflect.deleteProperty(config, '__proto__')
    Reflect.deleteProperty(config.services.users, '__proto__')
    const parsed = parseConfig(config)
    expect(Object.hasOwn(parsed.services.users!.endpoints[0]!.labels, '__proto__')).toBe(true)
    expect(Object.hasOwn(parsed.services.users!.subsets.v1!, '__proto__')).toBe(true)
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('array holes: every index is validated', () => {
  it.each([
    [
      'endpoints: [ , url]',
      { services: { users: { endpoints: sparse(2, { 1: URL1 }) } } },
      'services.users.endpoints[0]',
    ],
    [
      'routes: [ , r]',
      { services: { users }, routes: sparse(2, { 1: { route: [{ service: 'users' }] } }) },
      'routes[0]',
    ],
    [
      'match: [ , c]',
      {
        services: { users },
        routes: [{ match: sparse(2, { 1: { host: 'users' } }), route: [{ service: 'users' }] }],
      },
      'routes[0].match[0]',
    ],
    ['route: new Array(1)', { services: { users }, routes: [{ route: new Array(1) }] }, 'routes[0].route[0]'],
    [
      'endpoints: new Array(1)',
      { services: { users: { endpoints: new Array(1) } } },
      'services.users.endpoints[0]',
    ],
  ])('refuses %s naming the index', (_, config, path) => {
    const issues = refused(config)
    expect(issues.map((i) => i.path)).toEqual([path])
    expect(issues[0]?.message).toBe('expected an item, got an empty slot (a hole in the array)')
  })

  it('keeps the last good endpoint set when a resolver answers a holey array, with a discovery-error', async () => {
    const clock = new ManualClock()
    const answers: unknown[] = [[URL1], sparse(2, { 1: 'http://127.0.0.1:8082' }), [undefined]]
    const m = mesh(
      { services: { users: { discovery: { refresh: '1s' } } } },
      { clock, resolvers: { users: () => answers.shift() as string[] } },
    )
    const errors: unknown[] = []
    m.events.on('discovery-error', (e) => errors.push(e.error))
    await m.ready()
    expect(m.config.services.users?.endpoints.map((e) => e.url)).toEqual([URL1])
    for (let i = 0; i < 2; i++) {
      await clock.advance(1100)
      await clock.flush()
    }
    expect(errors).toHaveLength(2)
    expect(errors[0]).toBeInstanceOf(ConfigInvalidError)
    expect((errors[0] as ConfigInvalidError).issues[0]?.path).toBe('services.users.endpoints[0]')
    expect(m.config.services.users?.endpoints.map((e) => e.url)).toEqual([URL1])
  })
})

describe('header names and values are RFC 9110 tokens and field values, checked at parse', () => {
  const route = (extra: Record<string, unknown>) => ({
    services: { users },
    routes: [{ route: [{ service: 'users' }, { service: 'users', weight: 0 }], ...extra }],
  })
  it.each([
    [
      'requestHeaders.set name',
      route({ requestHeaders: { set: { 'x a': 'v' } } }),
      'routes[0].requestHeaders.set["x a"]',
    ],
    [
      'requestHeaders.set value',
      route({ requestHeaders: { set: { 'x-a': 'v\r\nx-b: 1' } } }),
      'routes[0].requestHeaders.set.x-a',
    ],
    [
      'requestHeaders.add value NUL',
      route({ requestHeaders: { add: { 'x-a': 'v\u0000' } } }),
      'routes[0].requestHeaders.add.x-a',
    ],
    [
      'requestHeaders.remove name',
      route({ requestHeaders: { remove: ['x:y'] } }),
      'routes[0].requestHeaders.remove[0]',
    ],
    [
      'responseHeaders.set value',
      route({ responseHeaders: { set: { 'x-a': 'v\n' } } }),
      'routes[0].responseHeaders.set.x-a',
    ],
    [
      'responseHeaders.add name',
      route({ responseHeaders: { add: { 'x\u00e9': 'v' } } }),
      'routes[0].responseHeaders.add.xé',
    ],
    ['rewrite.host', route({ rewrite: { host: 'evil\r\nx: 1' } }), 'routes[0].rewrite.host'],
    ['rewrite.prefix', route({ rewrite: { prefix: '/a\nb' } }), 'routes[0].rewrite.prefix'],
    ['sticky.header', route({ sticky: { header: 'x a' } }), 'routes[0].sticky.header'],
    ['sticky.cookie', route({ sticky: { cookie: 'a=b' } }), 'routes[0].sticky.cookie'],
    [
      'match header name',
      route({ match: [{ headers: { 'x\r\n': { exact: 'a' } } }] }),
      'routes[0].match[0].headers["x\\r\\n"]',
    ],
    [
      'fallback.headers value',
      { services: { users: { ...users, fallback: { headers: { 'x-a': 'a\rb' } } } } },
      'services.users.fallback.headers.x-a',
    ],
    [
      'hashKey.header',
      { services: { users: { ...users, loadBalancer: 'ring-hash', hashKey: { header: 'a b' } } } },
      'services.users.hashKey.header',
    ],
    [
      'hashKey.cookie',
      { services: { users: { ...users, loadBalancer: 'ring-hash', hashKey: { cookie: 'a;b' } } } },
      'services.users.hashKey.cookie',
    ],
  ])('refuses a bad %s naming the path', (_, config, path) => {
    expect(refused(config).map((i) => i.path)).toEqual([path])
  })

  it('accepts tokens, obs-text and tabs in values, and a host with a port', () => {
    expect(() =>
      parseConfig(
        route({
          requestHeaders: { set: { "x-a!#$%&'*+.^_`|~": 'v\tw é' }, remove: ['x-b'] },
          rewrite: { host: 'users.internal:8080' },
          sticky: { cookie: 'session' },
        }),
      ),
    ).not.toThrow()
  })

  it('sends a POST once through a route with response header operations, and rewrites its headers', async () => {
    const { transport, sent } = counting()
    const m = mesh(
      {
        services: { users },
        routes: [
          {
            route: [{ service: 'users' }],
            responseHeaders: { set: { 'x-added': 'yes' }, remove: ['x-upstream'] },
          },
        ],
      },
      { httpTransport: transport },
    )
    const res = await withMesh(fetch, m)('http://users/x', { method: 'POST', body: 'b' })
    expect(sent).toEqual(['POST'])
    expect(res.headers.get('x-added')).toBe('yes')
    expect(res.headers.get('x-upstream')).toBeNull()
  })

  it('refuses a fallback body with a status that has none (fetch would throw at the call)', () => {
    expect(refused({ services: { users: { ...users, fallback: { status: 204, body: 'x' } } } })).toEqual([
      { path: 'services.users.fallback.body', message: 'expected an empty body with status 204' },
    ])
  })

  it('answers an injected abort with status 204 as a Response, not a TypeError', async () => {
    const m = mesh(
      {
        services: { users },
        routes: [{ route: [{ service: 'users' }], fault: { abort: { percent: 100, status: 204 } } }],
      },
      { httpTransport: counting().transport },
    )
    const res = await withMesh(fetch, m)('http://users/x')
    expect(res.status).toBe(204)
  })
})

describe('numeric options have ranges enforced at parse', () => {
  it.each([
    [1e10, 'expected a duration of at most 2147483647ms (about 24.8 days), got 10000000000'],
    [3e9, 'expected a duration of at most 2147483647ms (about 24.8 days), got 3000000000'],
    [20_000, 'expected a whole number of calls from 1 to 10000 for a count window, got 20000'],
    [0, 'expected a whole number of calls from 1 to 10000 for a count window, got 0'],
    [1.5, 'expected a whole number of calls from 1 to 10000 for a count window, got 1.5'],
  ])('refuses circuitBreaker.windowSize %s (a RangeError or a 3 GB buffer on main)', (size, message) => {
    const issues = refused({
      services: { users: { ...users, circuitBreaker: { failureRateThreshold: 50, windowSize: size } } },
    })
    expect(issues).toEqual([{ path: 'services.users.circuitBreaker.windowSize', message }])
  })

  it('checks a route-level breaker window the same way', () => {
    const issues = refused({
      services: { users },
      routes: [
        { route: [{ service: 'users' }], circuitBreaker: { failureRateThreshold: 5, windowSize: 1e10 } },
      ],
    })
    expect(issues.map((i) => i.path)).toEqual(['routes[0].circuitBreaker.windowSize'])
  })

  it('refuses a duration a timer cannot hold (it would fire after 1 ms) and counts beyond their range', () => {
    const issues = refused({
      services: {
        users: {
          ...users,
          timeout: 1e10,
          concurrency: { max: 1e12 },
          endpoints: [{ url: URL1, weight: 2 ** 53 }],
        },
      },
    })
    expect(issues.map((i) => i.path)).toEqual([
      'services.users.endpoints[0].weight',
      'services.users.timeout',
      'services.users.concurrency.max',
    ])
    expect(issues[1]?.message).toBe(
      'expected a duration of at most 2147483647ms (about 24.8 days), got 10000000000',
    )
  })

  it('accepts the bounds themselves', () => {
    expect(() =>
      parseConfig({
        services: {
          users: {
            ...users,
            timeout: 2_147_483_647,
            circuitBreaker: { failureRateThreshold: 50, windowSize: 10_000 },
            concurrency: { max: 1_000_000 },
          },
        },
      }),
    ).not.toThrow()
  })
})

describe('a call through an accepted config never fails with a raw error', () => {
  it('fails a call to a prototype name with no configured service as a pass-through, not a misroute', async () => {
    const passed: string[] = []
    const m = mesh({ services: { users } }, { httpTransport: counting().transport })
    const fetch2 = withMesh(
      (async (input: string | URL | Request) => {
        passed.push(String(input))
        return new Response('direct')
      }) as typeof fetch,
      m,
    )
    const res = await fetch2('http://constructor/x')
    expect(await res.text()).toBe('direct')
    expect(passed).toEqual(['http://constructor/x'])
    const strict = mesh({ strict: true, services: { users } })
    const error = await withMesh(fetch, strict)('http://tostring/x').catch((e: unknown) => e)
    expect(isMeshError(error, 'UNKNOWN_SERVICE')).toBe(true)
  })
})

describe('service names a URL reads differently', () => {
  it('refuses a name the URL parser reads as an IPv4 address or cannot carry, naming the path', async () => {
    for (const [name, path] of [
      ['0', 'services.0'],
      ['1.2', 'services.1.2'],
      ['users.123', 'services.users.123'],
    ] as const) {
      let error: unknown
      try {
        createMesh({ services: { [name]: { endpoints: ['http://127.0.0.1:1'] } } })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ConfigInvalidError)
      expect((error as Error).message).toContain(path)
    }
    const alias = () =>
      createMesh({ services: { users: { endpoints: ['http://127.0.0.1:1'], hosts: ['10'] } } })
    expect(alias).toThrow(/services\.users\.hosts\[0\].*reads it as "0\.0\.0\.10"/)
    await createMesh({ services: { 'users.v1': { endpoints: ['http://127.0.0.1:1'] } } }).close()
  })
})
