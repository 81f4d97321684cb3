/**
 * A grpc-js client on the mesh, runnable with `npx tsx examples/grpc-client.ts`: two local
 * grpc-js servers behind the service name `users`, and a client made for `users` whose calls
 * the mesh balances, retries (gRFC A6) and bounds with a deadline. It exits 0.
 */
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { createMesh } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'

// The service, inline (a .proto file works the same with protoLoader.loadSync).
const descriptor = {
  nested: {
    demo: {
      nested: {
        Users: {
          methods: {
            GetUser: { requestType: 'UserRequest', responseType: 'User' },
            ListUsers: { requestType: 'UserRequest', responseType: 'User', responseStream: true },
          },
        },
        UserRequest: { fields: { id: { type: 'int32', id: 1 }, slow: { type: 'bool', id: 2 } } },
        User: {
          fields: {
            id: { type: 'int32', id: 1 },
            name: { type: 'string', id: 2 },
            from: { type: 'string', id: 3 },
          },
        },
      },
    },
  },
}
const definition = protoLoader.fromJSON(descriptor as Parameters<typeof protoLoader.fromJSON>[0])
// biome-ignore lint/suspicious/noExplicitAny: loadPackageDefinition is untyped without generated code
const demo = (grpc.loadPackageDefinition(definition) as any).demo
const Users: grpc.ServiceClientConstructor = demo.Users

interface User {
  id: number
  name: string
  from: string
}

// Two instances of "users"; the second answers UNAVAILABLE once, which the mesh retries elsewhere.
let failures = 1
async function startServer(name: string): Promise<{ address: string; server: grpc.Server }> {
  const server = new grpc.Server()
  server.addService(Users.service, {
    GetUser(call: grpc.ServerUnaryCall<{ id: number; slow: boolean }, User>, cb: grpc.sendUnaryData<User>) {
      if (call.request.slow) return // never answers: the deadline ends the call
      if (name === 'two' && failures-- > 0)
        return cb({ code: grpc.status.UNAVAILABLE, details: 'warming up' })
      cb(null, { id: call.request.id, name: `user ${call.request.id}`, from: name })
    },
    ListUsers(call: grpc.ServerWritableStream<{ id: number }, User>) {
      for (let id = 1; id <= 3; id++) call.write({ id, name: `user ${id}`, from: name })
      call.end()
    },
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  )
  return { address: `127.0.0.1:${port}`, server }
}
const servers = [await startServer('one'), await startServer('two')]

const mesh = createMesh({
  services: {
    users: {
      protocol: 'grpc',
      endpoints: servers.map((s) => s.address), // host:port
      loadBalancer: 'round-robin',
      timeout: '2s', // the gRPC deadline of every unary call, all attempts included
      retry: { attempts: 3 }, // UNAVAILABLE is retried, on another endpoint
    },
  },
})
mesh.events.on('retry', (e) => console.log(`  (attempt ${e.attempt} on ${e.service} failed; retrying)`))

// The client is made for the service name; the mesh knows where "users" runs.
// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type UsersClient = grpc.Client & Record<string, any>
const users = withMeshGrpc(new Users('users', grpc.credentials.createInsecure()) as UsersClient, mesh)

const getUser = (id: number, options: grpc.CallOptions = {}) =>
  new Promise<User>((resolve, reject) =>
    users.GetUser({ id }, new grpc.Metadata(), options, (err: grpc.ServiceError | null, user?: User) =>
      err ? reject(err) : resolve(user!),
    ),
  )

for (let id = 1; id <= 4; id++) {
  const user = await getUser(id)
  console.log(`GetUser ${id}: ${user.name} (from ${user.from})`)
}

const stream: grpc.ClientReadableStream<User> = users.ListUsers({ id: 0 })
for await (const user of stream) console.log(`ListUsers: ${(user as User).name}`)

try {
  await new Promise<User>((resolve, reject) =>
    users.GetUser(
      { id: 9, slow: true },
      { deadline: Date.now() + 100 },
      (err: grpc.ServiceError | null, u?: User) => (err ? reject(err) : resolve(u!)),
    ),
  )
} catch (error) {
  const e = error as grpc.ServiceError
  console.log(`slow call: ${grpc.status[e.code]} (${e.details})`)
}

users.close()
await mesh.close()
for (const s of servers) s.server.forceShutdown()
