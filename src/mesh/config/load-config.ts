/**
 * Configuration from a file: {@link loadConfig} reads a YAML or JSON file and validates it, and
 * {@link watchConfig} applies each valid change to a live mesh and refuses bad ones.
 *
 * Why a file watcher in a library: the config is plain data so that operators can change routes
 * (a canary's weight, a fault for a chaos drill) without a deploy; a file mounted from a
 * Kubernetes ConfigMap or written by a control plane is the simplest carrier of that data. The
 * watcher follows the directory, not the file, because editors and ConfigMap updates replace a
 * file by renaming another one over it: a watch on the old inode would go quiet. A bad edit must
 * never take a working mesh down, so it is reported and the last good config stays in force.
 * Every problem names the file and, when it can be found, the line (`mesh.yaml:12`).
 *
 * A config file is untrusted input (D48): a file nested deeper than {@link MAX_DEPTH} levels is
 * refused before any recursive step sees it (the YAML composer, `toJS` and the line lookup all
 * recurse, and a stack overflow inside them has been seen to abort the process on the next
 * parse), aliases expand at most {@link MAX_ALIASES} times (a "billion laughs" file is refused), a
 * UTF-8 byte order mark is skipped, and every failure of the text is a `ConfigInvalidError`
 * naming the file.
 */

import { type FSWatcher, watch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname, extname, resolve } from 'node:path'
import { LineCounter, parseDocument } from 'yaml'
import type { TimerHandle } from '../../core/clock.js'
import { ConfigInvalidError, type ConfigIssue } from '../../core/errors.js'
import type { Mesh } from '../mesh.js'
import { type MeshConfig, parseConfig } from './config.js'
import { MAX_ALIASES, MAX_DEPTH, tooDeepAt } from './yaml-bounds.js'

type Format = 'yaml' | 'json'

const FORMATS: Readonly<Record<string, Format>> = { '.yaml': 'yaml', '.yml': 'yaml', '.json': 'json' }

/**
 * Reads the mesh config in the file at `path` (YAML for `.yaml`/`.yml`, JSON for `.json`),
 * validates it as `createMesh` would, and returns it as written (the input form, not resolved).
 * Throws {@link ConfigInvalidError} listing every problem, each message ending with the file
 * and line (`(mesh.yaml:12)`); a file nested deeper than 64 levels, or whose YAML aliases expand
 * more than 100 times, is refused the same way, and a leading UTF-8 byte order mark is skipped. A
 * file that cannot be read rejects with the file system's error.
 *
 * @example
 * ```ts
 * const mesh = createMesh(await loadConfig('mesh.yaml'))
 * ```
 */
export async function loadConfig(path: string): Promise<MeshConfig> {
  const format = formatOf(path)
  return parseConfigText(await readFile(path, 'utf8'), format, path)
}

function formatOf(path: string): Format {
  const format = FORMATS[extname(path).toLowerCase()]
  if (format === undefined) {
    throw new ConfigInvalidError([{ path: '', message: `expected a .yaml, .yml or .json file, got ${path}` }])
  }
  return format
}

export { MAX_ALIASES, MAX_DEPTH } from './yaml-bounds.js'

/** One refusal of the whole text, naming the file (and the line when known). */
function refuse(message: string, file: string, line?: number): ConfigInvalidError {
  return new ConfigInvalidError([
    { path: '', message: `${message} (${file}${line === undefined ? '' : `:${line}`})` },
  ])
}

/**
 * Parses and validates `text`; `file` is only named in messages. Nothing but a
 * `ConfigInvalidError` leaves it: an unexpected failure of a parser is one too, naming the file.
 */
function parseConfigText(raw: string, format: Format, file: string): MeshConfig {
  // A byte order mark is no part of the text (JSON.parse refuses it, editors on Windows write it).
  const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw
  try {
    return parseText(text, format, file)
  } catch (error) {
    if (error instanceof ConfigInvalidError) throw error
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    throw refuse(`unreadable ${format === 'json' ? 'JSON' : 'YAML'}: ${reason.slice(0, 200)}`, file)
  }
}

function parseText(text: string, format: Format, file: string): MeshConfig {
  const deepAt = tooDeepAt(text)
  if (deepAt !== undefined) throw refuse(`nested deeper than ${MAX_DEPTH} levels`, file, deepAt)
  let data: unknown
  if (format === 'json') {
    try {
      data = JSON.parse(text)
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      throw new ConfigInvalidError([{ path: '', message: `invalid JSON: ${reason} (${file})` }])
    }
  } else {
    const lines = new LineCounter()
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true })
    if (doc.errors.length > 0) {
      throw new ConfigInvalidError(
        doc.errors.map((e) => {
          // The pretty message repeats the position and quotes the source: keep the first clause.
          const reason = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:$/, '')
          const at = e.linePos?.[0]
          return {
            path: '',
            message: `invalid YAML: ${reason} (${file}${at ? `:${at.line}:${at.col}` : ''})`,
          }
        }),
      )
    }
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIASES })
    } catch (error) {
      // `yaml` throws a ReferenceError for an alias bomb ("Excessive alias count").
      const reason = error instanceof Error ? error.message : String(error)
      throw refuse(`invalid YAML: ${reason.slice(0, 200)}`, file)
    }
  }
  try {
    parseConfig(data)
  } catch (error) {
    if (error instanceof ConfigInvalidError) throw withFile(error, text, file)
    throw error
  }
  return data as MeshConfig
}

/** The same error with each message ending in the file and, when found, the line of its value. */
function withFile(error: ConfigInvalidError, text: string, file: string): ConfigInvalidError {
  // JSON is YAML 1.2 flow syntax, so one parser finds positions in both formats (the text has
  // passed tooDeepAt: its nesting is bounded). No line is better than no error.
  const lines = new LineCounter()
  let doc: ReturnType<typeof parseDocument> | undefined
  try {
    doc = parseDocument(text, { lineCounter: lines })
  } catch {
    doc = undefined
  }
  const issues: ConfigIssue[] = error.issues.map((issue) => {
    let line: number | undefined
    try {
      line = doc === undefined ? undefined : lineOf(doc, lines, issue.path)
    } catch {
      line = undefined
    }
    return { path: issue.path, message: `${issue.message} (${file}${line === undefined ? '' : `:${line}`})` }
  })
  return new ConfigInvalidError(issues)
}

type Located = { range?: [number, number, number] | null | undefined }

/** The line of the value at `path` (`routes[0].match[1].headers["x.y"]`), or of its nearest parent. */
function lineOf(doc: ReturnType<typeof parseDocument>, lines: LineCounter, path: string): number | undefined {
  const segments = pathSegments(path)
  for (let n = segments.length; n > 0; n--) {
    const node = doc.getIn(segments.slice(0, n), true) as Located | undefined
    const start = node?.range?.[0]
    if (start !== undefined) return lines.linePos(start).line
  }
  return undefined
}

/** Splits a config issue path (`a.b[0]["x.y"]`) into keys and indexes. */
function pathSegments(path: string): (string | number)[] {
  const segments: (string | number)[] = []
  const token = /(?:^|\.)([^\s.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g
  for (const m of path.matchAll(token)) {
    if (m[1] !== undefined) segments.push(m[1])
    else if (m[2] !== undefined) segments.push(Number(m[2]))
    else if (m[3] !== undefined) segments.push(JSON.parse(m[3]) as string)
  }
  return segments
}

/** Options of {@link watchConfig}. */
export interface WatchConfigOptions {
  /**
   * Quiet time in ms after the last change before the file is read, so an editor's burst of
   * writes (truncate, write, rename) is applied once. Timed on the mesh's clock. Default `100`.
   */
  readonly debounce?: number
  /**
   * Called with each refused change (a `ConfigInvalidError` naming the file and line, or the file
   * system's error) while the last good config stays in force. Default: `console.error` with the
   * file name.
   */
  readonly onError?: (error: unknown) => void
  /** Called with the config after each change applied. Default none. */
  readonly onUpdate?: (config: MeshConfig) => void
}

/** A running {@link watchConfig}. */
export interface ConfigWatcher {
  /** Stops watching; a read in progress is not applied. Idempotent. */
  close(): void
}

/**
 * Watches the config file at `path` and applies each valid change to `mesh` with `mesh.update`.
 * A change that does not parse or validate is refused whole and reported to `onError`; the
 * mesh keeps its last good config. Survives editors that replace the file by renaming another
 * over it. Does not keep the process alive; after `mesh.close()`, the next change stops it.
 * Throws at once when `path` has another extension or its directory does not exist.
 *
 * @example
 * ```ts
 * const mesh = createMesh(await loadConfig('mesh.yaml'))
 * const watcher = watchConfig(mesh, 'mesh.yaml', { onUpdate: () => console.log('config applied') })
 * // later
 * watcher.close()
 * ```
 */
export function watchConfig(mesh: Mesh, path: string, options: WatchConfigOptions = {}): ConfigWatcher {
  const format = formatOf(path)
  const file = resolve(path)
  const name = basename(file)
  const debounce = options.debounce ?? 100
  const onError =
    options.onError ??
    ((error: unknown) => console.error(`meshlet: ${path} not applied, keeping the last good config:`, error))
  let timer: TimerHandle | undefined
  let closed = false
  let reading = false
  let changedWhileReading = false
  // The text last applied: an editor's repeated events for one save apply it once.
  let applied: string | undefined
  let missingRetried = false

  const schedule = (): void => {
    if (closed) return
    if (timer !== undefined) mesh.clock.clearTimer(timer)
    timer = mesh.clock.setTimer(fire, debounce)
  }

  const fire = (): void => {
    timer = undefined
    if (reading) {
      changedWhileReading = true
      return
    }
    reading = true
    reload().finally(() => {
      reading = false
      if (changedWhileReading) {
        changedWhileReading = false
        schedule()
      }
    })
  }

  const reload = async (): Promise<void> => {
    if (mesh.closed) return close()
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      // Between the unlink and the rename of a replace, the file is briefly absent: look again once.
      if (!missingRetried && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        missingRetried = true
        schedule()
      } else if (!closed) {
        onError(error)
      }
      return
    }
    missingRetried = false
    if (closed || text === applied) return
    try {
      const config = parseConfigText(text, format, path)
      mesh.update(config)
      applied = text
      options.onUpdate?.(config)
    } catch (error) {
      onError(error)
    }
  }

  const watcher: FSWatcher = watch(dirname(file), (_event, changed) => {
    // Some platforms do not say which file changed: then it may be ours.
    if (changed === null || changed === name) schedule()
  })
  watcher.on('error', (error) => {
    if (!closed) onError(error)
  })
  watcher.unref()

  function close(): void {
    if (closed) return
    closed = true
    if (timer !== undefined) mesh.clock.clearTimer(timer)
    timer = undefined
    watcher.close()
  }
  return { close }
}
