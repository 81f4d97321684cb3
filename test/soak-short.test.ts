/**
 * The soak's short form (issue 23): 50,000 calls through the full stack with faults, on a real
 * loopback server in a child process (scripts/soak.ts; `npm run soak` runs 1,000,000). The heap
 * stays within 10% after warm-up, nothing is left after close, no POST reaches the server twice,
 * every outcome is typed; and the faults really happened (retries, resets, ejections, breaker).
 */
import { describe, expect, it } from 'vitest'
import { formatSoakReport, soak } from '../scripts/soak.js'

describe('soak, short form', () => {
  it('50,000 calls with injected and upstream faults: heap flat, nothing leaked, no POST twice', async () => {
    const report = await soak({ calls: 50_000 })
    const table = formatSoakReport(report)
    expect(report.failures, table).toEqual([])
    // The run met every kind of fault it is meant to survive.
    expect(report.outcomes['200'], table).toBeGreaterThan(40_000)
    expect(report.events.retry ?? 0, table).toBeGreaterThan(500)
    expect(report.events.ejection ?? 0, table).toBeGreaterThan(0)
    expect(report.events['circuit-state'] ?? 0, table).toBeGreaterThan(0)
    expect(report.server.posts, table).toBeGreaterThan(4_000)
    expect(report.server.duplicatePosts).toBe(0)
    expect(report.heap.samples.length).toBeGreaterThanOrEqual(8)
    expect(report.leaked).toEqual([])
  }, 180_000)

  it('fails when a check fails: a heap tolerance below zero is reported, with the figures', async () => {
    const report = await soak({ calls: 4_000, transport: 'memory', heapTolerance: -0.5 })
    expect(report.failures).toHaveLength(1)
    expect(report.failures[0]).toMatch(/^heap grew -?\d+\.\d% after warm-up \(.* MB; allowed -50%\)$/)
    expect(formatSoakReport(report)).toContain('FAIL')
  })
})
