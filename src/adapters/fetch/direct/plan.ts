/**
 * The request half of the direct path: what Node's fetch would hand its dispatcher for one
 * call, computed without running fetch, for the calls whose shape is simple enough to predict
 * (see {@link planDirect}); `undefined` for every other call, which then goes through fetch.
 *
 * What fetch sends was read off undici's fetch (lib/web/fetch/index.js, the same in undici 6 on
 * Node 20 and undici 7 on Node 24): the caller's headers in their order and letter case, then
 * `content-type` from the body, `accept`, `accept-language`, `content-length`,
 * `sec-fetch-mode: cors`, `user-agent` and `accept-encoding`, each but `sec-fetch-mode` only
 * where the caller set none.
 * The prediction is never trusted blindly: the first call of each shape goes through fetch,
 * and the direct path is used for that shape only if fetch dispatched exactly the predicted
 * options ({@link matchesDispatched}), so a Node release that changes what fetch sends turns the
 * direct path off instead of sending something else (docs/decisions.md, D25).
 */

/** The options a dispatcher is given, as far as the direct path writes and compares them. */
export interface DirectOptions {
  readonly origin: string
  readonly path: string
  readonly method: string
  /** Header names and values in sending order, deadline header excluded. */
  readonly headers: Record<string, string>
}

/** One attempt that the direct path can send (made per attempt: the transport adds its deadline header to `headers`). */
export interface DirectPlan extends DirectOptions {
  /** The body bytes or text (fetch's extraction of a string, bytes or `URLSearchParams`). */
  readonly body: string | Uint8Array | null
  /**
   * The call's shape: method, body kind, scheme and which of fetch's default headers the caller
   * set. Calls of one shape get the same treatment from fetch, so one verified call vouches for
   * the shape.
   */
  readonly shape: string
}

/** The `init` keys the direct path understands; any other key with a value sends the call through fetch. */
const UNDERSTOOD = new Set(['method', 'headers', 'body', 'signal', 'dispatcher', 'redirect'])

/** The methods fetch normalises to upper case; another spelling goes through fetch. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'])
const NORMALISED = new Set(['get', 'head', 'post', 'put', 'delete', 'options'])

/**
 * Caller headers that make fetch do more than pass them on (conditional requests change its
 * cache mode, `range` adds `accept-encoding: identity`), that undici itself rules on, or whose
 * default the prediction would have to guess: a call that sets one goes through fetch.
 */
const THROUGH_FETCH = new Set([
  'if-modified-since',
  'if-none-match',
  'if-unmodified-since',
  'if-match',
  'if-range',
  'range',
  'host',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'transfer-encoding',
  'content-length',
  'te',
  'trailer',
  'proxy-connection',
  'cache-control',
  'pragma',
  'sec-fetch-mode', // fetch overwrites it in place
])

/** The defaults fetch adds where the caller set none, with the bit each sets in the shape. */
const DEFAULTS = {
  'content-type': 1,
  accept: 2,
  'accept-language': 4,
  'user-agent': 8,
  'accept-encoding': 16,
} as const
type DefaultName = keyof typeof DEFAULTS

/** A header name as fetch accepts it (an RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * A copy of a buffer source's bytes, as fetch takes one; `undefined` for what fetch refuses or
 * reads otherwise (a shared, resizable or detached buffer).
 */
function copyOf(source: ArrayBuffer | ArrayBufferView): Uint8Array | undefined {
  const buffer = source instanceof ArrayBuffer ? source : source.buffer
  if (!(buffer instanceof ArrayBuffer)) return undefined // a SharedArrayBuffer
  const b = buffer as ArrayBuffer & { resizable?: boolean; detached?: boolean }
  if (b.resizable === true || b.detached === true) return undefined
  try {
    if (source instanceof ArrayBuffer) return new Uint8Array(source.slice(0))
    return new Uint8Array(buffer.slice(source.byteOffset, source.byteOffset + source.byteLength))
  } catch {
    return undefined // detached (slice throws): fetch's own TypeError
  }
}
/**
 * A header value fetch sends unchanged: Latin-1 without NUL, CR or LF, and no leading or
 * trailing whitespace (which fetch would strip).
 */
const PLAIN_VALUE = /^(?:[^\0\r\n\t \u0100-\uffff](?:[^\0\r\n\u0100-\uffff]*[^\0\r\n\t \u0100-\uffff])?)?$/
/**
 * A path and query the URL parser leaves as they are: no dot segments, and only characters
 * that neither path nor query percent-encoding touches (no `'`, which the query of an http(s)
 * URL encodes).
 */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*$/
/** A `.` or `..` segment, literal or percent-encoded, which the URL parser resolves. */
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:[/?]|$)/i

/**
 * The plan for sending `init` to `origin + path` directly, or `undefined` when only fetch can
 * tell what it would send. `origin` must be one that {@link directOrigin} accepts (the transport
 * checks each endpoint's once). A caller header named `replaced` (any letter case) is left out:
 * the transport sends its own value under that name.
 */
export function planDirect(
  origin: string,
  path: string,
  init: RequestInit,
  replaced?: string,
): DirectPlan | undefined {
  for (const key in init) {
    if (!UNDERSTOOD.has(key) && (init as Record<string, unknown>)[key] !== undefined) return undefined
  }
  if (init.redirect !== undefined && init.redirect !== 'follow') return undefined
  // An empty query (`/a?`) is dispatched without its `?`, but reported with it.
  if (!PLAIN_PATH.test(path) || DOT_SEGMENT.test(path) || path.endsWith('?')) return undefined

  let method = init.method ?? 'GET'
  if (!METHODS.has(method)) {
    if (!NORMALISED.has(method)) return undefined
    method = method.toUpperCase()
  }

  let body: string | Uint8Array | null = null
  let bodyKind = 'none'
  let contentType: string | undefined
  const given = init.body
  if (given !== undefined && given !== null) {
    if (method === 'GET' || method === 'HEAD') return undefined // fetch throws its own TypeError
    if (typeof given === 'string') {
      body = given
      bodyKind = 'text'
      contentType = 'text/plain;charset=UTF-8'
    } else if (given instanceof ArrayBuffer || ArrayBuffer.isView(given)) {
      // A copy, made now as fetch makes it: the caller may change its bytes once the call is made.
      const bytes = copyOf(given)
      if (bytes === undefined) return undefined
      body = bytes
      bodyKind = 'bytes'
    } else if (given instanceof URLSearchParams) {
      body = given.toString()
      bodyKind = 'form'
      contentType = 'application/x-www-form-urlencoded;charset=UTF-8'
    } else {
      return undefined // Blob, FormData, streams: fetch's extraction
    }
  }

  // No prototype: a header named `__proto__` is a header like any other.
  const headers: Record<string, string> = Object.create(null)
  let set = 0
  const callerHeaders = init.headers
  if (callerHeaders !== undefined && callerHeaders !== null) {
    const proto: unknown = Object.getPrototypeOf(callerHeaders)
    if (proto !== Object.prototype && proto !== null) return undefined // Headers, pairs: fetch's
    const record = callerHeaders as Record<string, unknown>
    // fetch reads a record's own keys, symbols and non-enumerable ones included (and a symbol
    // key, such as an own `Symbol.iterator`, changes how it reads it): only plain ones here.
    const names = Object.keys(record)
    if (Reflect.ownKeys(record).length !== names.length) return undefined
    let seen: string[] | undefined
    for (const name of names) {
      const value = record[name]
      if (typeof value !== 'string' || !TOKEN.test(name) || !PLAIN_VALUE.test(value)) return undefined
      const lower = name.toLowerCase()
      if (lower === replaced) continue // the transport sends its own value
      if (name === '__proto__') return undefined // an own `__proto__` (from JSON.parse): fetch drops it
      if (THROUGH_FETCH.has(lower)) return undefined // fetch's to rule on
      if (seen === undefined) seen = [lower]
      else if (seen.includes(lower))
        return undefined // fetch would combine the two
      else seen.push(lower)
      const bit = DEFAULTS[lower as DefaultName]
      if (bit !== undefined) set |= bit
      headers[name] = value
    }
  }

  if (contentType !== undefined && (set & DEFAULTS['content-type']) === 0)
    headers['content-type'] = contentType
  if ((set & DEFAULTS.accept) === 0) headers.accept = '*/*'
  if ((set & DEFAULTS['accept-language']) === 0) headers['accept-language'] = '*'
  if (body !== null) headers['content-length'] = String(byteLength(body))
  else if (method === 'POST' || method === 'PUT') headers['content-length'] = '0'
  headers['sec-fetch-mode'] = 'cors'
  if ((set & DEFAULTS['user-agent']) === 0) headers['user-agent'] = 'node'
  const https = origin.charCodeAt(4) === 115 /* s */
  if ((set & DEFAULTS['accept-encoding']) === 0)
    headers['accept-encoding'] = https ? 'br, gzip, deflate' : 'gzip, deflate'

  return {
    origin,
    path,
    method,
    headers,
    body,
    shape: `${method} ${bodyKind} ${https ? 's' : ''}${set}`,
  }
}

/**
 * The Fetch standard's bad ports (undici's `badPorts`, the same in undici 6 and 7): fetch refuses
 * them without dispatching anything, so an endpoint on one stays on fetch.
 */
const BAD_PORTS = new Set(
  (
    '1 7 9 11 13 15 17 19 20 21 22 23 25 37 42 43 53 69 77 79 87 95 101 102 103 104 109 110 111 113 ' +
    '115 117 119 123 135 137 139 143 161 179 389 427 465 512 513 514 515 526 530 531 532 540 548 554 ' +
    '556 563 587 601 636 989 990 993 995 1719 1720 1723 2049 3659 4045 4190 5060 5061 6000 6566 6665 ' +
    '6666 6667 6668 6669 6679 6697 10080'
  ).split(' '),
)

/**
 * `address` when the direct path can send to it: an http(s) URL origin written as the URL parser
 * writes it (so that fetch would dispatch to exactly that origin), on a port fetch does not
 * refuse; otherwise `undefined`.
 */
export function directOrigin(address: string): string | undefined {
  let url: URL
  try {
    url = new URL(address)
  } catch {
    return undefined
  }
  if (url.origin !== address || (url.protocol !== 'http:' && url.protocol !== 'https:')) return undefined
  return BAD_PORTS.has(url.port) ? undefined : address
}

function byteLength(body: string | Uint8Array): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength
}

/**
 * Whether fetch dispatched exactly what `plan` predicts: origin, path, method, and the same
 * header names (letter case included) with the same values in the same order, leaving out
 * `ignored` on both sides (the deadline header, which the transport sets itself).
 */
export function matchesDispatched(plan: DirectOptions, dispatched: unknown, ignored: string): boolean {
  const expected = Object.keys(plan.headers).filter((name) => name.toLowerCase() !== ignored)
  if (typeof dispatched !== 'object' || dispatched === null) return false
  const d = dispatched as { origin?: unknown; path?: unknown; method?: unknown; headers?: unknown }
  if (String(d.origin) !== plan.origin || d.path !== plan.path || d.method !== plan.method) return false
  const headers = d.headers
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return false
  let i = 0
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() === ignored) continue
    if (name !== expected[i] || (headers as Record<string, unknown>)[name] !== plan.headers[name])
      return false
    i++
  }
  return i === expected.length
}
