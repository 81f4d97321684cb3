/**
 * The loopback gRPC server of the bench, run in its own process (bench/loopback.ts forks it):
 * grpc-js on 127.0.0.1 serving the `Echo` service of test/fixtures/echo.proto, whose `Unary`
 * answers every call with its text. It sends its port to the parent and runs until killed.
 */
import * as grpc from '@grpc/grpc-js'
import { type EchoReply, type EchoRequest, echoService } from '../test/helpers/grpc-servers.js'

const server = new grpc.Server()
const notUsed = (call: { emit(event: string, error: unknown): unknown }) =>
  call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'not in the bench' })
server.addService(echoService, {
  Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
    cb(null, { text: call.request.text, index: 0, server: 'bench' })
  },
  ServerStream: notUsed,
  ClientStream: notUsed,
  Bidi: notUsed,
})
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error
  process.send?.({ port })
})
process.on('SIGTERM', () => {
  server.forceShutdown()
  process.exit(0)
})
process.on('disconnect', () => process.exit(0))
