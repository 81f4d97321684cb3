/**
 * What a wrapped grpc-js client asked of its channel (credentials, channel options, the name it
 * authenticates and announces), turned into the settings of the mesh's endpoint channels, so
 * that a meshed call goes out exactly as the client would have sent it (decision D36).
 *
 * Why read them from the client rather than ask the user again: a client made with
 * `credentials.createSsl()` that silently went plaintext once wrapped, or lost its
 * `grpc.default_compression_algorithm` or message-size limits, would be a mesh that makes calls
 * the caller never asked for. grpc-js keeps both on its channel: `client.getChannel()` is a
 * `ChannelImplementation` whose `internalChannel` holds the `credentials` and `options` the
 * client was constructed with (grpc-js 1.x, `internal-channel.ts`). Those are private fields,
 * so they are checked by shape; a channel that does not have them (a `channelOverride`, a
 * `channelFactoryOverride`, another library) cannot be read, and the mesh then refuses to wrap
 * the client unless `withMesh` is given `credentials` ({@link CredentialsUnavailableError}),
 * rather than guess and maybe send plaintext.
 *
 * The name: a bare client to `users:50051` sends `:authority: users:50051` and checks the
 * server's certificate against `users` (its SNI too). An endpoint channel's target is the
 * endpoint's `host:port`, so without help grpc-js would announce and verify `10.0.0.7:50051`.
 * The endpoint channel therefore gets `grpc.default_authority` (the client's authority) and,
 * for secure credentials, `grpc.ssl_target_name_override` (the client's target host), unless
 * the client or `withMesh`'s `channelOptions` set them: the peer is authenticated as the
 * service the caller named, whichever of its endpoints answers.
 */
import { MeshError } from '../../core/errors.js'
import type { GrpcChannel } from './grpc-types.js'

/** A grpc-js `Channel` constructor (`grpc.Channel`, the client's own copy of it). */
export type GrpcChannelConstructor = new (
  target: string,
  credentials: object,
  options: Record<string, unknown>,
) => GrpcChannel

/** What a grpc-js client's channel was built with, as far as it could be read. */
export interface ClientChannelSettings {
  /** The client's channel credentials (a grpc-js `ChannelCredentials`). */
  readonly credentials: object
  /** The client's channel options, as the client passed them to its channel. */
  readonly options: Readonly<Record<string, unknown>>
  /** The client's `Channel` class (the copy of grpc-js the client uses). */
  readonly Channel: GrpcChannelConstructor
}

/**
 * Channel options grpc-js adds to a channel's own options (an HTTP CONNECT proxy taken from the
 * environment: they name the client's target and are derived again by each endpoint channel).
 */
const DERIVED_OPTIONS = ['grpc.http_connect_target', 'grpc.http_connect_creds'] as const

/** Option keys meshlet sets on endpoint channels from the client's target. */
export const AUTHORITY_OPTION = 'grpc.default_authority'
/** grpc-js's channel option naming the TLS server name (SNI and certificate check). */
export const TLS_NAME_OPTION = 'grpc.ssl_target_name_override'

/** A wrapped client whose channel credentials meshlet cannot read, with no `credentials` given. */
export class CredentialsUnavailableError extends MeshError {
  constructor(target: string) {
    super(
      'CREDENTIALS_UNAVAILABLE',
      `withMesh: cannot read the channel credentials of the client for "${target}" (its channel is ` +
        'not a @grpc/grpc-js ChannelImplementation); pass withMesh(client, mesh, { credentials }) ' +
        'so that its calls are not sent with other credentials than it asked for',
    )
    this.name = 'CredentialsUnavailableError'
  }
}

/** Whether `v` looks like grpc-js's `ChannelCredentials` (it has `_isSecure()`). */
function isChannelCredentials(v: unknown): v is { _isSecure(): boolean } {
  return v !== null && typeof v === 'object' && typeof (v as { _isSecure?: unknown })._isSecure === 'function'
}

/**
 * The credentials, options and `Channel` class of a grpc-js client's channel, or `undefined`
 * when the channel is not grpc-js's `ChannelImplementation` (see the module comment).
 */
export function readClientChannel(channel: unknown): ClientChannelSettings | undefined {
  if (channel === null || typeof channel !== 'object') return undefined
  const internal = (channel as { internalChannel?: unknown }).internalChannel
  if (internal === null || typeof internal !== 'object') return undefined
  const { credentials, options } = internal as { credentials?: unknown; options?: unknown }
  if (!isChannelCredentials(credentials)) return undefined
  if (options !== undefined && (options === null || typeof options !== 'object')) return undefined
  const Channel = (channel as { constructor?: unknown }).constructor
  if (typeof Channel !== 'function') return undefined
  const own: Record<string, unknown> = {}
  if (options !== undefined) {
    for (const key of Object.keys(options as object)) {
      if ((DERIVED_OPTIONS as readonly string[]).includes(key)) continue
      own[key] = (options as Record<string, unknown>)[key]
    }
    // Through a proxy, the client's own target is the one grpc-js recorded for the CONNECT.
  }
  return { credentials, options: own, Channel: Channel as GrpcChannelConstructor }
}

/** Whether channel credentials are secure (TLS); `false` for what is not grpc-js's. */
export function isSecure(credentials: object): boolean {
  return isChannelCredentials(credentials) && credentials._isSecure() === true
}

/**
 * The authority a grpc-js channel to `target` announces (`getDefaultAuthority` for the `dns`
 * scheme and bare names): `users:50051` for `users:50051`, `dns:users:50051` and
 * `dns:///users:50051`; `undefined` for other schemes (`unix:`, ...).
 */
export function authorityOfTarget(target: string): string | undefined {
  let rest = target
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):(?!\d+$)/.exec(rest)
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'dns') return undefined
    rest = rest.slice(scheme[0].length)
  }
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2)
    if (slash < 0) return undefined
    rest = rest.slice(slash + 1)
  }
  return rest === '' ? undefined : rest
}

/** The host of an authority (`users` of `users:50051`, `::1` of `[::1]:50051`). */
export function hostOfAuthority(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']')
    return end < 0 ? authority : authority.slice(1, end)
  }
  const colon = authority.indexOf(':')
  return colon < 0 || authority.indexOf(':', colon + 1) >= 0 ? authority : authority.slice(0, colon)
}

/** Settings of the endpoint channels of one wrapped client. */
export interface EndpointChannelSettings {
  /** Their channel credentials. */
  readonly credentials: object
  /** Their channel options (a fresh object, to be handed to grpc-js as is). */
  readonly options: Readonly<Record<string, unknown>>
  /** The `Channel` class that builds them; `undefined`: the one of meshlet's grpc-js. */
  readonly Channel: GrpcChannelConstructor | undefined
}

/** What `withMesh` was given that bears on the endpoint channels. */
export interface EndpointChannelOverrides {
  readonly credentials?: object | undefined
  readonly channelOptions?: Readonly<Record<string, unknown>> | undefined
}

/**
 * The endpoint channel settings of a client with channel `channel` and `target`: credentials
 * `overrides.credentials` ?? the client's; options: those derived from the target
 * (`grpc.default_authority`, and `grpc.ssl_target_name_override` when secure), then the
 * client's, then `overrides.channelOptions` (a later one wins, key by key). Throws
 * {@link CredentialsUnavailableError} when no credentials can be had.
 */
export function endpointChannelSettings(
  channel: unknown,
  target: string,
  overrides: EndpointChannelOverrides = {},
): EndpointChannelSettings {
  const client = readClientChannel(channel)
  const credentials = overrides.credentials ?? client?.credentials
  if (credentials === undefined) throw new CredentialsUnavailableError(target)
  const options: Record<string, unknown> = {}
  // Through a proxy grpc-js records the client's target in `grpc.http_connect_target`.
  const proxied = (channel as { internalChannel?: { options?: Record<string, unknown> } })?.internalChannel
    ?.options?.['grpc.http_connect_target']
  const authority = authorityOfTarget(typeof proxied === 'string' ? proxied : target)
  if (authority !== undefined) {
    options[AUTHORITY_OPTION] = authority
    if (isSecure(credentials)) options[TLS_NAME_OPTION] = hostOfAuthority(authority)
  }
  if (client !== undefined) Object.assign(options, client.options)
  if (overrides.channelOptions !== undefined) Object.assign(options, overrides.channelOptions)
  // The same class as the credentials' grpc-js: grpc-js checks `instanceof ChannelCredentials`.
  const Channel =
    overrides.credentials === undefined || overrides.credentials === client?.credentials
      ? client?.Channel
      : undefined
  return { credentials, options, Channel }
}

/**
 * A key that is equal for equal settings: the credentials and the `Channel` class by identity,
 * the options by value (each client copies its options, so identity would never match), values
 * that are not strings, numbers or booleans by identity.
 */
export function settingsKey(settings: EndpointChannelSettings, idOf: (o: object) => number): string {
  const parts = [
    String(idOf(settings.credentials)),
    settings.Channel === undefined ? '0' : String(idOf(settings.Channel)),
  ]
  for (const key of Object.keys(settings.options).sort()) {
    const v = settings.options[key]
    const t = typeof v
    const value =
      (t === 'object' && v !== null) || t === 'function' ? `#${idOf(v as object)}` : `${t}:${String(v)}`
    parts.push(`${JSON.stringify(key)}=${value}`)
  }
  return parts.join('\u0000')
}
