/**
 * Turns fetch's arguments into the pipeline's request: which host (service) is called, which
 * path, and whether the body can be sent more than once. A stream body is never buffered to
 * make it replayable: it is sent once, and the call is then not retried.
 */

/** A fetch call as the pipeline sees it. */
export interface HttpRequest {
  /** The service named by the URL's host. */
  readonly service: string
  /** Path and query, from the first `/` (always starts with `/`). */
  readonly path: string
  /** Upper-case method. */
  readonly method: string
  /** The fetch options to send with every attempt (the caller's, minus `signal`). */
  readonly init: RequestInit
  /** Whether the body can be sent again (no body, or a string, bytes, Blob, form). */
  readonly replayable: boolean
  /** The caller's signal, when it gave one. */
  readonly signal: AbortSignal | undefined
  /**
   * Whether each attempt tells the upstream how long is left, in the `x-meshlet-timeout-ms`
   * header (the service's `propagateDeadline`, default `true`).
   */
  readonly propagateDeadline: boolean
  /**
   * The URL the caller asked for, as fetch reports it (`Response.url` of the answer: the
   * endpoint's address never shows). Unset for requests the mesh makes itself (health checks).
   */
  readonly url?: string | undefined
  /** Whether the caller asked for `https:`: each attempt then goes to a TLS endpoint only. */
  readonly secure?: boolean | undefined
  /**
   * The `Host` sent upstream instead of the endpoint's address: the route's `rewrite.host`,
   * else the service's `authority`. Unset: the endpoint's host and port, as fetch sends them.
   */
  readonly authority?: string | undefined
  /**
   * The caller's `Request`, when its body must be sent by fetch itself from the `Request` (a
   * known length, a replay on a 307 or 308): fetch is then called with it, its URL sent to the
   * endpoint by the attempt's dispatcher. Unset for other inputs.
   */
  readonly request?: Request | undefined
}

/** Where a URL points, read exactly as fetch's WHATWG URL parser reads it. */
export interface Target {
  /** The host name as the parser serialises it (lower-case ASCII), without port or brackets. */
  readonly host: string
  /** The path and query fetch sends (`pathname + search`); `/` when empty. */
  readonly path: string
  /** Whether the scheme is `https:`. */
  readonly secure: boolean
  /** The URL as fetch reports it in `Response.url`: the parser's serialisation, without fragment. */
  readonly href: string
  /** Whether the URL carries a user name or password, which fetch refuses. */
  readonly credentials: boolean
}

// Character classes of the fast path (ASCII only): a host name character that the parser keeps
// as it is, a path character it neither percent-encodes nor rewrites, and the same in a query.
const HOST = 1
const PATH = 2
const QUERY = 4
const CLASSES = (() => {
  const t = new Uint8Array(128)
  const mark = (chars: string, bits: number) => {
    for (let i = 0; i < chars.length; i++) {
      const c = chars.charCodeAt(i)
      t[c] = t[c]! | bits
    }
  }
  const lowerDigits = 'abcdefghijklmnopqrstuvwxyz0123456789'
  mark(`${lowerDigits}-._`, HOST)
  // RFC 3986 unreserved and sub-delims, `:`, `@`, `/` and `%`: none is in the WHATWG path or
  // special-query percent-encode sets, and none is rewritten (`\` would be, in a special URL).
  const plain = `${lowerDigits}ABCDEFGHIJKLMNOPQRSTUVWXYZ-._~!$&()*+,;=:@/%`
  mark(plain, PATH | QUERY)
  mark('?', QUERY)
  return t
})()

/**
 * Reads an `http:`/`https:` URL as fetch's WHATWG parser does: host (the service name), path
 * with query, scheme, the URL fetch reports, and whether it carries credentials. `undefined`
 * for a URL the parser refuses or of another scheme, which then passes through to the wrapped
 * fetch untouched (which rejects it, or does what it always does).
 *
 * The common URL takes a fast path without building a `URL` (about 20x cheaper): a lower-case
 * scheme, `//`, a host of lower-case letters, digits, `-`, `.` and `_` whose last label is not
 * a number nor an `xn--` label, an optional non-default port of at most 65535 written without
 * leading zeros, then nothing or a path and query made only of characters the parser keeps,
 * without dot segments. For such a URL the parser's serialisation is the input itself (less
 * its fragment, plus `/` for an empty path), so the fast path is exact by construction; every
 * other URL (upper case, credentials, `\`, tabs, spaces, percent-encoded hosts, IPv4 forms,
 * dot segments, default ports...) is parsed by `new URL`, exactly as fetch parses it.
 */
export function parseTarget(url: string): Target | undefined {
  const fast = fastTarget(url)
  return fast === undefined ? slowTarget(url) : fast
}

// The loops of fastTarget test a lower-case letter (the common character of hosts and paths,
// in every class) by range before the table: cheaper per character than the table's bounds-
// checked load (D61).

/** The fast path of {@link parseTarget}: `undefined` when only the parser can tell. */
function fastTarget(url: string): Target | undefined {
  const start = schemeEnd(url)
  if (start < 0) return undefined
  const classes = CLASSES
  const length = url.length
  let i = start
  let labelStart = start
  let dashes = false
  // The host: at least one character, the last label checked below.
  for (let previous = 0; i < length; i++) {
    const c = url.charCodeAt(i)
    if (c >= 97 && c <= 122) {
      previous = c
      continue
    }
    if (c >= 128 || (classes[c]! & HOST) === 0) break
    if (c === 46 /* . */) labelStart = i + 1
    else if (c === 45 /* - */ && previous === 45) dashes = true
    previous = c
  }
  const hostEnd = i
  if (hostEnd === start) return undefined
  // A last label that starts with a letter is no number, and a host without `--` has no `xn--`
  // label: the common case, checked inline.
  const first = url.charCodeAt(labelStart)
  if (!(labelStart < hostEnd && first >= 97 && first <= 122) || dashes) {
    if (
      !plainLabel(url, labelStart === hostEnd ? lastLabel(url, start, hostEnd) : labelStart, hostEnd) &&
      !dottedQuad(url, start, hostEnd)
    )
      return undefined
    // The parser decodes and checks every `xn--` label (IDNA): leave them to it.
    const idna = url.indexOf('xn--', start)
    if (idna >= 0 && idna < hostEnd) return undefined
  }
  if (i < length && url.charCodeAt(i) === 58 /* : */) {
    // A port: 1-5 digits, no leading zero, at most 65535, not the scheme's default.
    const portStart = ++i
    let port = 0
    for (; i < length; i++) {
      const c = url.charCodeAt(i)
      if (c < 48 || c > 57) break
      port = port * 10 + (c - 48)
    }
    const digits = i - portStart
    if (digits === 0 || digits > 5 || port > 65535 || (digits > 1 && url.charCodeAt(portStart) === 48))
      return undefined
    if (port === (start === 8 ? 443 : 80)) return undefined
  }
  const secure = start === 8
  const host = url.slice(start, hostEnd)
  if (i === length) return { host, path: '/', secure, href: `${url}/`, credentials: false }
  if (url.charCodeAt(i) !== 47 /* / */) return undefined // `?`, `#`, `@`, `\`, upper case...: the parser's
  const pathStart = i
  let end = length
  // The path: a `.` or `%2e` segment is resolved by the parser, so any `/.` or `/%` is left to it.
  for (; i < length; i++) {
    const c = url.charCodeAt(i)
    if (c >= 97 && c <= 122) continue
    if (c === 47 /* / */) {
      const next = url.charCodeAt(i + 1)
      if (next === 46 || next === 37) return undefined
    } else if (c >= 128 || (classes[c]! & PATH) === 0) {
      break
    }
  }
  let query = -1
  if (i < length && url.charCodeAt(i) === 63 /* ? */) {
    query = i
    for (i++; i < length; i++) {
      const c = url.charCodeAt(i)
      if (c >= 97 && c <= 122) continue
      if (c >= 128 || (classes[c]! & QUERY) === 0) break
    }
  }
  if (i < length) {
    if (url.charCodeAt(i) !== 35 /* # */) return undefined
    end = i
  }
  // An empty query is no `search` (`/a?` sends `/a`), though the URL keeps its `?`.
  const path = url.slice(pathStart, query === end - 1 ? query : end)
  return { host, path, secure, href: end === length ? url : url.slice(0, end), credentials: false }
}

/** Where the last label of a host ending in `.` starts (the parser ignores one trailing dot). */
function lastLabel(url: string, start: number, end: number): number {
  let i = end - 1 // the trailing dot
  while (i > start && url.charCodeAt(i - 1) !== 46) i--
  return i
}

/**
 * Whether the last label leaves the host a domain name as written: not a number (`10`, `0x1f`,
 * `0x`), which makes the parser read the host as IPv4.
 */
function plainLabel(url: string, from: number, to: number): boolean {
  if (to > from && url.charCodeAt(to - 1) === 46) to-- // a trailing dot
  for (let i = from; i < to; i++) {
    const c = url.charCodeAt(i)
    if (c < 48 || c > 57) {
      // Not all digits: a number only in the form 0x followed by hex digits (or nothing).
      if (i === from + 1 && (c === 120 || c === 88) && url.charCodeAt(from) === 48) {
        for (let j = i + 1; j < to; j++) {
          const h = url.charCodeAt(j)
          if (!((h >= 48 && h <= 57) || (h >= 97 && h <= 102))) return true
        }
        return false
      }
      return true
    }
  }
  return false // all digits (or empty)
}

/**
 * Whether a host is an IPv4 address as the parser serialises it: four decimal parts of 0-255,
 * none with a leading zero (which the parser reads as octal). Endpoints and other hosts called
 * by address (`http://10.0.0.5:8080`) keep the fast path.
 */
function dottedQuad(url: string, from: number, to: number): boolean {
  let parts = 0
  let value = 0
  let digits = 0
  for (let i = from; i <= to; i++) {
    const c = i === to ? 46 : url.charCodeAt(i)
    if (c === 46 /* . */) {
      if (digits === 0 || value > 255 || ++parts > 4) return false
      value = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return false // a leading zero
      value = value * 10 + (c - 48)
      if (++digits > 3) return false
    } else {
      return false
    }
  }
  return parts === 4
}

/** {@link parseTarget} by `new URL`, for every URL the fast path leaves to the parser. */
function slowTarget(url: string): Target | undefined {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return undefined // the wrapped fetch rejects it as it always does
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined
  const host = u.hostname
  if (host.charCodeAt(0) === 91 /* [ */) return undefined // an IPv6 literal: never a service name
  const credentials = u.username !== '' || u.password !== ''
  u.hash = ''
  return { host, path: u.pathname + u.search, secure: u.protocol === 'https:', href: u.href, credentials }
}

/**
 * Where the authority starts in a URL that begins exactly `http://` or `https://` (7 or 8);
 * `-1` otherwise (the parser's: other letter cases, spaces, `http:/x`...). Compared by
 * character code: `startsWith` costs ~35 ns a call on Node 20, more than the rest of the parse.
 */
function schemeEnd(url: string): number {
  if (
    url.charCodeAt(0) !== 104 /* h */ ||
    url.charCodeAt(1) !== 116 /* t */ ||
    url.charCodeAt(2) !== 116 /* t */ ||
    url.charCodeAt(3) !== 112 /* p */
  )
    return -1
  const colon = url.charCodeAt(4) === 115 /* s */ ? 5 : 4
  return url.charCodeAt(colon) === 58 && url.charCodeAt(colon + 1) === 47 && url.charCodeAt(colon + 2) === 47
    ? colon + 3
    : -1
}

/**
 * The URL string of a fetch input, converted as fetch converts it: a `Request`'s `url`, a
 * `URL`'s `href`, anything else by `String()` (fetch's WebIDL `USVString` conversion, so an
 * object with a `toString` is a URL). Throws what that conversion throws (a `Symbol`).
 */
export function urlOf(input: unknown): string {
  return typeof input === 'string'
    ? input
    : input instanceof URL
      ? input.href
      : input instanceof Request
        ? input.url
        : String(input)
}

/** Whether a fetch body can be read again for another attempt. */
export function isReplayableBody(body: unknown): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof Blob ||
    body instanceof URLSearchParams ||
    body instanceof FormData
  )
}

/** The options of a call given none: shared and frozen, since nothing writes to a request's `init`. */
const NO_INIT: RequestInit = Object.freeze({})

/**
 * undici's key of a `Request`'s own dispatcher (`new Request(url, { dispatcher })`) where it is
 * a symbol property (undici 6, Node 20); `undefined` where it is a private field (undici 7).
 */
const REQUEST_DISPATCHER: symbol | undefined = (() => {
  try {
    return Object.getOwnPropertySymbols(new Request('http://localhost/')).find(
      (s) => s.description === 'dispatcher',
    )
  } catch {
    return undefined
  }
})()

/** fetch's refusal of a body on a `GET` or `HEAD` request, word for word. */
export function bodyOnGetError(): TypeError {
  return new TypeError('Request with GET/HEAD method cannot have body.')
}

/**
 * Builds the pipeline request for a call to `service` at `path`. A `Request` input is flattened
 * into fetch options so that every attempt can be sent to another origin; a `Request` with a
 * body is also kept whole ({@link HttpRequest.request}), so that fetch sends its body as it
 * would (with its length; replayed on a 307), and is not retried. Its own dispatcher is kept
 * where undici lets it be read (Node 20). `propagateDeadline` (default `true`) says whether the
 * transport sends the time left to the upstream; `target` (from {@link parseTarget}) gives the
 * URL fetch would report and the scheme; `authority` (default none) the `Host` to send instead
 * of the endpoint's. Throws fetch's `TypeError` for a body on `GET`/`HEAD`.
 */
export function toHttpRequest(
  service: string,
  path: string,
  input: string | URL | Request,
  init: RequestInit | undefined,
  propagateDeadline = true,
  target?: Target,
  authority?: string,
): HttpRequest {
  let options: RequestInit
  let signal: AbortSignal | undefined
  let request: Request | undefined
  if (typeof input === 'string' || !(input instanceof Request)) {
    if (init === undefined) {
      options = NO_INIT
    } else {
      signal = init.signal ?? undefined
      if (init.signal !== undefined) {
        const { signal: _drop, ...rest } = init
        options = rest
      } else {
        options = init
      }
    }
  } else {
    signal = init?.signal ?? input.signal
    options = {
      method: input.method,
      headers: input.headers,
      body: input.body,
      redirect: input.redirect,
      integrity: input.integrity,
      keepalive: input.keepalive,
      referrer: input.referrer,
      referrerPolicy: input.referrerPolicy,
      credentials: input.credentials,
      cache: input.cache,
      mode: input.mode,
    }
    if (input.body !== null) {
      ;(options as { duplex?: string }).duplex = 'half'
      request = input
    }
    const own =
      REQUEST_DISPATCHER === undefined
        ? undefined
        : (input as unknown as Record<symbol, unknown>)[REQUEST_DISPATCHER]
    if (own !== undefined && own !== null) (options as { dispatcher?: unknown }).dispatcher = own
    if (init !== undefined) {
      const { signal: _drop, ...rest } = init
      options = { ...options, ...rest }
      // A body given in `init` replaces the Request's: fetch sends that one.
      if (rest.body !== undefined) request = undefined
    }
  }
  const method = options.method === undefined ? 'GET' : options.method.toUpperCase()
  if ((method === 'GET' || method === 'HEAD') && options.body !== undefined && options.body !== null)
    throw bodyOnGetError()
  return {
    service,
    path,
    method,
    init: options,
    replayable: request === undefined && isReplayableBody(options.body),
    signal,
    propagateDeadline,
    url: target?.href,
    secure: target?.secure,
    // Always present (one object shape for every call, D61), `undefined` for the endpoint's own.
    authority,
    request,
  }
}
