/**
 * The README quick start, runnable with `npx tsx examples/basic-fetch.ts`: two local servers
 * behind one service name, a mesh, and a wrapped fetch that balances and retries across them.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMesh, withMesh } from '../src/index.js'

// Two instances of a "users" service; the second fails its first request, which the mesh retries.
let calls = 0
const servers = ['one', 'two'].map((name) =>
  createServer((req, res) => {
    const status = name === 'two' && calls++ === 0 ? 503 : 200
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ from: name, path: req.url }))
  }),
)
await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))))
const endpoints = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`)

const mesh = createMesh({
  services: { users: { endpoints, loadBalancer: 'round-robin', timeout: '2s', retry: { attempts: 3 } } },
})
const fetch2 = withMesh(fetch, mesh) // typeof fetch; host "users" names the service
mesh.events.on('retry', (e) => console.log(`  (attempt ${e.attempt} on ${e.service} failed; retrying)`))

for (let id = 1; id <= 4; id++) {
  const res = await fetch2(`http://users/api/users/${id}`)
  console.log(res.status, await res.text())
}

await mesh.close()
for (const s of servers) s.close()
