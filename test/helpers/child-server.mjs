// A server in a child process, so that a test can kill it with SIGKILL (no FIN, no goodbye: the
// kernel resets its connections) and start it again on the same port. Plain JavaScript so that
// `node` runs it without a loader. Arguments: `http` or `grpc`, then a port (0 for any).
// It prints `listening <port>` once bound, and `request <method> <path>` (HTTP) or
// `call <text>` (gRPC) for each request it receives, before answering, so the parent counts
// what reached the server even when the server dies before it answers.
//
// HTTP routes: `/hold` never answers; anything else answers 200 `ok`.
// gRPC: the Echo service of test/fixtures/echo.proto; Unary echoes, or never answers if the
// text is `hold`.
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'

const [kind, portArg] = process.argv.slice(2)
const port = Number(portArg ?? 0)
const say = (line) => process.stdout.write(`${line}\n`)

if (kind === 'http') {
  const server = createServer((req, res) => {
    say(`request ${req.method} ${req.url}`)
    if (req.url === '/hold') return
    req.resume()
    req.on('end', () => res.end('ok'))
  })
  server.listen(port, '127.0.0.1', () => say(`listening ${server.address().port}`))
} else if (kind === 'grpc') {
  const grpc = await import('@grpc/grpc-js')
  const protoLoader = await import('@grpc/proto-loader')
  const proto = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url))
  const definition = protoLoader.loadSync(proto, { keepCase: true, defaults: true })
  const Echo = grpc.loadPackageDefinition(definition).meshlet.test.Echo
  const server = new grpc.Server()
  server.addService(Echo.service, {
    Unary(call, cb) {
      say(`call ${call.request.text}`)
      if (call.request.text === 'hold') return
      cb(null, { text: call.request.text, index: 0, server: 'child' })
    },
  })
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
    if (error) {
      say(`error ${error.message}`)
      process.exit(1)
    }
    say(`listening ${bound}`)
  })
} else {
  say(`error unknown kind ${kind}`)
  process.exit(2)
}
