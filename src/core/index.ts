/** The protocol-neutral core; imports nothing from the rest of meshlet. */
export * from './cancel.js'
export * from './clock.js'
export * from './context.js'
export * from './errors.js'
export * from './events.js'
export * from './handler.js'
export * from './outcome.js'
export * from './random.js'
