/**
 * The {@link TlsClient} of each service with `tls`, per mesh: made when a stack of the service is
 * first built, kept across configurations that keep the same `tls`, closed (file watchers and
 * timers stopped, dispatchers closed once their requests end) when the service's `tls` changes or
 * goes, and when the mesh closes.
 */

import { TlsClient, type TlsSettings } from '../adapters/tls/client.js'
import { TlsMaterialError } from '../core/errors.js'
import type { Mesh } from './mesh.js'

interface Held {
  readonly key: string
  readonly client: TlsClient | TlsMaterialError
}

const registries = new WeakMap<Mesh, Map<string, Held>>()

/** The service's TLS client, or the error that made its material unusable (calls reject with it). */
export function tlsClientOf(m: Mesh, service: string, settings: TlsSettings): TlsClient | TlsMaterialError {
  let reg = registries.get(m)
  if (reg === undefined) {
    const made = new Map<string, Held>()
    reg = made
    registries.set(m, made)
    m.onSnapshot(() => {
      for (const [name, held] of made) {
        const now = m.snapshot.config.services[name]?.tls
        if (now === undefined || JSON.stringify(now) !== held.key) {
          made.delete(name)
          if (held.client instanceof TlsClient) held.client.close()
        }
      }
    })
    m.onClose(() => {
      for (const held of made.values()) if (held.client instanceof TlsClient) held.client.close()
      made.clear()
    })
  }
  const key = JSON.stringify(settings)
  const held = reg.get(service)
  if (held !== undefined && held.key === key) return held.client
  if (held !== undefined && held.client instanceof TlsClient) held.client.close()
  let client: TlsClient | TlsMaterialError
  try {
    client = new TlsClient(service, settings, {
      clock: m.clock,
      onRotate: (s, version) => {
        if (m.events.has('tls-rotated')) m.events.emit('tls-rotated', { service: s, version })
      },
      onReject: (s, reason) => {
        if (m.events.has('tls-rejected')) m.events.emit('tls-rejected', { service: s, reason })
      },
    })
  } catch (error) {
    client =
      error instanceof TlsMaterialError
        ? error
        : new TlsMaterialError(service, String((error as Error).message))
  }
  reg.set(service, { key, client })
  return client
}
