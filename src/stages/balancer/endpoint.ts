/**
 * An endpoint as the balancer sees it: an address, its static attributes, and the live load
 * counters that strategies read. Endpoint objects are owned by the mesh and survive config
 * updates for the same address, so their statistics carry over.
 */
import { createContextKey } from '../../core/context.js'

/** The static description of an endpoint. */
export interface EndpointInit {
  /** Where to send: an origin (`http://10.0.0.1:8080`) or `host:port` for gRPC. */
  readonly address: string
  /** Relative share of traffic for weighted strategies. Default `1`. */
  readonly weight?: number
  /** Labels for subsets (`{ version: 'v2' }`). Default `{}`. */
  readonly labels?: Readonly<Record<string, string>>
  /** Locality zone. Default none. */
  readonly zone?: string | undefined
}

/** One upstream instance, with the load counters balancing reads. */
export class Endpoint {
  /** Where to send. */
  readonly address: string
  /** Relative share of traffic for weighted strategies. */
  weight = 1
  /** Labels for subsets. */
  labels: Readonly<Record<string, string>> = {}
  /** Locality zone, when known. */
  zone: string | undefined = undefined
  /** Attempts in flight on this endpoint now. */
  pending = 0

  constructor(init: EndpointInit) {
    this.address = init.address
    this.reconfigure(init)
  }

  /** Takes new static attributes from a config update, keeping the live counters. */
  reconfigure(init: EndpointInit): void {
    this.weight = init.weight ?? 1
    this.labels = init.labels ?? {}
    this.zone = init.zone
  }
}

/** The endpoint chosen for the current attempt (set by the balancer, read by the transport). */
export const ENDPOINT = createContextKey<Endpoint | undefined>('meshlet.endpoint', undefined)
