/**
 * One `abort` listener per caller `AbortSignal`, however many calls share it. An application
 * often gives one signal (a request's, a shutdown's) to many concurrent calls; a listener per
 * call makes Node 20 print `MaxListenersExceededWarning` past ten, where bare fetch prints none
 * (undici raises the limit of the signals it is given). The mesh's stages and transports
 * register here instead: the first registration on a signal adds the one listener, the last
 * removal takes it away, so nothing outlives the calls (decision D40).
 */

/** The calls waiting on one signal, and the one listener that tells them. */
interface Hub {
  readonly waiting: Set<() => void>
  readonly fire: () => void
}

const hubs = new WeakMap<AbortSignal, Hub>()

const noop = () => {}

/**
 * Runs `fn` once when `signal` aborts. Returns the function that removes it; call it when the
 * work finishes. Like `addEventListener` on a signal that has aborted already, nothing runs
 * then (callers check `signal.aborted` first). Listeners run in the order they were added.
 */
export function onSignalAbort(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) return noop
  let hub = hubs.get(signal)
  if (hub === undefined) {
    const waiting = new Set<() => void>()
    const created: Hub = {
      waiting,
      fire: () => {
        hubs.delete(signal)
        // A listener may remove others (they then do not run) or add new ones (to a new hub).
        for (const f of waiting) {
          waiting.delete(f)
          f()
        }
      },
    }
    hub = created
    hubs.set(signal, hub)
    signal.addEventListener('abort', hub.fire, { once: true })
  }
  const h = hub
  // A function may be registered by two calls: each registration is its own entry.
  const entry = h.waiting.has(fn) ? () => fn() : fn
  h.waiting.add(entry)
  return () => {
    if (!h.waiting.delete(entry) || h.waiting.size > 0) return
    if (hubs.get(signal) === h) {
      hubs.delete(signal)
      signal.removeEventListener('abort', h.fire)
    }
  }
}

/** How many listeners the hub of `signal` holds (for leak tests): 0 when it has none. */
export function signalListenerCount(signal: AbortSignal): number {
  return hubs.get(signal)?.waiting.size ?? 0
}
