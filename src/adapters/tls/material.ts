/**
 * A service's TLS material (trust bundle, certificate chain, key) from PEM text or files, and its
 * rotation: files are watched (`fs.watch`) and re-checked every `interval` ms as a fallback (a
 * watch misses atomic renames on some systems, and a mounted Kubernetes secret changes by a
 * symlink swap), on the mesh's clock. A new pair is taken only when it parses and the key matches the certificate;
 * otherwise the old material stays in force and `onReject` is told why (never with key text).
 * New connections use {@link TlsMaterial.current}; connections open keep theirs.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs'
import { dirname } from 'node:path'
import { type Clock, systemClock, type TimerHandle } from '../../core/clock.js'
import { TlsMaterialError } from '../../core/errors.js'

let watching = 0

/** @internal The file watchers and timers open now, all meshes together (for leak tests). */
export const activeWatches = (): number => watching

/** The settings the material comes from (a service's resolved `tls`). */
export interface MaterialSettings {
  readonly ca?: string | undefined
  readonly cert?: string | undefined
  readonly key?: string | undefined
}

/** One version of the material, as PEM text. */
export interface MaterialVersion {
  readonly ca: string | undefined
  readonly cert: string | undefined
  readonly key: string | undefined
  /** 1 for the first, +1 at each rotation taken. */
  readonly version: number
  /** When the certificate stops being valid (ms since the epoch), if there is one. */
  readonly notAfter: number | undefined
}

/** Options of {@link TlsMaterial}. */
export interface MaterialOptions {
  /** The service, for messages. */
  readonly service: string
  /** The re-check period of files in ms. Default 250 (so a change is seen within 1 s). */
  readonly interval?: number | undefined
  /** The clock of the re-check timer (the mesh's). Default the system clock. */
  readonly clock?: Clock | undefined
  /** Told when a rotation is taken. */
  readonly onRotate?: (version: number) => void
  /** Told when changed files are refused (the old material stays). */
  readonly onReject?: (reason: string) => void
}

const FIELDS = ['ca', 'cert', 'key'] as const

/** Whether a `ca` / `cert` / `key` value is PEM text (starts with `-----BEGIN`) rather than a file path. */
export const isPem = (value: string): boolean => value.startsWith('-----BEGIN')

/** Reads a field: PEM text as is, a file by path (a message names the field and path, not content). */
function read(service: string, field: string, value: string): string {
  if (isPem(value)) return value
  try {
    return readFileSync(value, 'utf8')
  } catch (error) {
    throw new TlsMaterialError(
      service,
      `tls.${field}: cannot read ${value} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    )
  }
}

/** Checks a version: the CA bundle and certificate parse, the key parses and matches the certificate. */
function check(
  service: string,
  ca: string | undefined,
  cert: string | undefined,
  key: string | undefined,
): number | undefined {
  if (ca !== undefined) {
    try {
      new X509Certificate(ca)
    } catch {
      throw new TlsMaterialError(service, 'tls.ca: not a PEM certificate')
    }
  }
  if (cert === undefined || key === undefined) return undefined
  let x: X509Certificate
  try {
    x = new X509Certificate(cert)
  } catch {
    throw new TlsMaterialError(service, 'tls.cert: not a PEM certificate')
  }
  let ok: boolean
  try {
    ok = x.checkPrivateKey(createPrivateKey(key))
  } catch {
    throw new TlsMaterialError(service, 'tls.key: not a PEM private key (content not shown)')
  }
  if (!ok) throw new TlsMaterialError(service, 'tls.key does not match tls.cert')
  return Date.parse(x.validTo)
}

/** A file's identity and content stamp. */
const stampOf = (path: string): string => {
  try {
    const s = statSync(path)
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
  } catch {
    return 'missing'
  }
}

/** The material of one service's `tls`; see the module comment. */
export class TlsMaterial {
  readonly #settings: MaterialSettings
  readonly #options: MaterialOptions
  #current: MaterialVersion
  readonly #files: string[] = []
  #stamps = ''
  /** The stamps of the last refused set, told once. */
  #refused = ''
  #timer: TimerHandle | undefined
  readonly #clock: Clock
  readonly #watchers: FSWatcher[] = []
  #closed = false

  /** Reads the material; throws {@link TlsMaterialError} when it is not usable. */
  constructor(settings: MaterialSettings, options: MaterialOptions) {
    this.#settings = settings
    this.#options = options
    this.#clock = options.clock ?? systemClock
    for (const f of FIELDS) {
      const v = settings[f]
      if (v !== undefined && !isPem(v)) this.#files.push(v)
    }
    this.#stamps = this.#stampAll()
    this.#current = this.#load(1)
    if (this.#files.length > 0) {
      const every = options.interval ?? 250
      const tick = () => {
        this.refresh()
        if (!this.#closed) this.#timer = this.#clock.setTimer(tick, every)
      }
      this.#timer = this.#clock.setTimer(tick, every)
      watching++
      // Directories, not files: a file replaced by a rename (as writers and Kubernetes' secret
      // volumes do, the latter by swapping a `..data` symlink) leaves a watch on the old inode.
      for (const dir of new Set(this.#files.map((f) => dirname(f)))) {
        try {
          const w = watch(dir, { persistent: false }, () => this.refresh())
          w.on('error', () => {})
          this.#watchers.push(w)
          watching++
        } catch {
          // The interval covers it.
        }
      }
    }
  }

  /** The material in force: new connections use it. */
  get current(): MaterialVersion {
    return this.#current
  }

  #stampAll(): string {
    return this.#files.map(stampOf).join('|')
  }

  #load(version: number): MaterialVersion {
    const s = this.#settings
    const service = this.#options.service
    const ca = s.ca === undefined ? undefined : read(service, 'ca', s.ca)
    const cert = s.cert === undefined ? undefined : read(service, 'cert', s.cert)
    const key = s.key === undefined ? undefined : read(service, 'key', s.key)
    const notAfter = check(service, ca, cert, key)
    return { ca, cert, key, version, notAfter }
  }

  /**
   * Re-reads the files when they changed: a usable new set becomes {@link current}; an unusable
   * one (half written, a key of another certificate) is refused and retried at the next change
   * or tick. Returns whether a new version was taken.
   */
  refresh(): boolean {
    if (this.#closed || this.#files.length === 0) return false
    const stamps = this.#stampAll()
    if (stamps === this.#stamps) return false
    let next: MaterialVersion
    try {
      next = this.#load(this.#current.version + 1)
    } catch (error) {
      // Keep the stamps unchanged so the next tick tries again (the writer may not be done).
      if (this.#refused !== stamps) {
        this.#refused = stamps
        this.#options.onReject?.((error as Error).message)
      }
      return false
    }
    this.#stamps = stamps
    if (next.ca === this.#current.ca && next.cert === this.#current.cert && next.key === this.#current.key)
      return false
    this.#current = next
    this.#options.onRotate?.(next.version)
    return true
  }

  /** Stops watching (no timer or watcher left). */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer)
      watching--
    }
    this.#timer = undefined
    for (const w of this.#watchers.splice(0)) {
      w.close()
      watching--
    }
  }
}
