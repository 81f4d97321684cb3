/**
 * The loopback HTTP server of the bench, run in its own process (bench/loopback.ts forks it):
 * node:http on 127.0.0.1, keep-alive, every request answered `200 ok` with the same two-byte
 * body. It sends its port to the parent and runs until killed.
 */
import http from 'node:http'

const BODY = Buffer.from('ok')
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) }
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
})
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.send?.({ port: typeof address === 'object' && address ? address.port : 0 })
})
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
process.on('disconnect', () => process.exit(0))
