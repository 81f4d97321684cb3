/**
 * The fetch transport's direct path, runnable with `npx tsx examples/fetch-transport.ts`: the
 * same calls through bare fetch, through `withMesh(fetch)` (plain calls sent straight to fetch's
 * dispatcher, the `Response` built by meshlet) and through a mesh with `directFetch: false`
 * (every call through fetch). The answers are the same; the time taken is not. A gzip answer and
 * a redirect show the hand-over to fetch: fetch decodes and follows them itself.
 * docs/fetch-transport.md explains the paths.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { createMesh, withMesh } from '../src/index.js'

const server = createServer((req, res) => {
  if (req.url === '/old') return void res.writeHead(301, { location: '/api/users/1' }).end()
  if (req.url === '/zipped')
    return void res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync('unzipped by fetch'))
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }))
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

const config = { services: { users: { endpoints: [origin] } } }
const mesh = createMesh(config)
const viaFetchMesh = createMesh(config, { directFetch: false })
const direct = withMesh(fetch, mesh)
const viaFetch = withMesh(fetch, viaFetchMesh)

/** What a caller can observe of an answer. */
async function seen(res: Response): Promise<string> {
  const names: string[] = []
  res.headers.forEach((_value, name) => {
    names.push(name)
  })
  return JSON.stringify([res.status, res.url, res.redirected, res.type, names, await res.text()])
}

for (const path of ['/api/users/1', '/old', '/zipped']) {
  // The one difference by design: a meshed answer's url is the URL the caller asked for
  // (http://users/...), as a sidecar's user sees it, where bare fetch reports the endpoint's.
  const bare = (await seen(await fetch(origin + path))).replaceAll(origin, 'http://users')
  const meshed = await seen(await direct(`http://users${path}`))
  console.log(`${path}: ${meshed === bare ? 'same as bare fetch' : `DIFFERENT from bare fetch: ${bare}`}`)
  console.log(`  ${meshed}`)
}

/** Calls per second of `call`, 8 at a time for `ms`. */
async function rate(call: () => Promise<unknown>, ms: number): Promise<number> {
  const end = performance.now() + ms
  let n = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < end) {
        await call()
        n++
      }
    }),
  )
  return (n / ms) * 1000
}
const ms = Number(process.env.EXAMPLE_MS ?? 1000)
const clients: Record<string, () => Promise<unknown>> = {
  'bare fetch': async () => (await fetch(`${origin}/x`)).text(),
  'withMesh(fetch), direct path': async () => (await direct('http://users/x')).text(),
  'withMesh(fetch), directFetch: false': async () => (await viaFetch('http://users/x')).text(),
}
for (const call of Object.values(clients)) await rate(call, ms / 4) // warm-up, alike for each
for (const [name, call] of Object.entries(clients))
  console.log(`${name.padEnd(36)} ${Math.round(await rate(call, ms))} calls/s`)

await mesh.close()
await viaFetchMesh.close()
server.close()
