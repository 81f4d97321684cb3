/**
 * `meshlet/testing`: run the real pipeline on virtual time with reproducible randomness, so a
 * resilience policy can be unit-tested in milliseconds.
 */
export { seededRandom } from '../core/random.js'
export { ManualClock, type ManualClockOptions } from './manual-clock.js'
